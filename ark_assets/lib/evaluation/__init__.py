"""Evaluation core: MedArk's test items and published results in, metrics and a report out.

``items`` is the shared contract (an item, a system's prediction); ``importers`` reads MedArk's
published formats (items, result files, MedRAG's form, ``records.pkl`` through a restricted
unpickler); ``metrics`` computes action selection, ask quality, AUV, support and similarity;
``report`` renders the leaderboard with confidence intervals and plots. Nothing here imports
Dagster.
"""
