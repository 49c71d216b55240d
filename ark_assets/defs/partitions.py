"""Partitions shared by every layer."""

import dagster as dg

# One partition per arrived file (never one per dialogue: Dagster's partition store and UI slow
# down past tens of thousands of partitions).
DIALOGUE_BATCHES = "dialogue_batches"
dialogue_batches = dg.DynamicPartitionsDefinition(name=DIALOGUE_BATCHES)

# One partition per evaluation file dropped in the eval inbox (MedArk's published test sets and
# other systems' result files): each is imported, audited and re-imported on its own.
EVAL_FILES = "eval_files"
eval_files = dg.DynamicPartitionsDefinition(name=EVAL_FILES)
