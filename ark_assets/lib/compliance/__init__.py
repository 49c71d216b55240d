"""Compliance core: PHI detection and de-identification, deletion-request tombstones, and the
audit report's checks and rendering.

``phi`` finds PHI spans (zh/en), ``deidentify`` replaces them with typed placeholders,
``tombstones`` records and matches deletion requests, ``audit_report`` judges and renders an
audit document. The Dagster side (the assets, the audit's walk over the event log, deletion
requests) is ``defs/compliance/``. Nothing here imports Dagster.
"""
