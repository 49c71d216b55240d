"""Partitions shared by every layer."""

import dagster as dg

# One partition per arrived file (never one per dialogue: Dagster's partition store and UI slow
# down past tens of thousands of partitions).
DIALOGUE_BATCHES = "dialogue_batches"
dialogue_batches = dg.DynamicPartitionsDefinition(name=DIALOGUE_BATCHES)
