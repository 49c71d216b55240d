"""Jobs of the ingest layer."""

import dagster as dg

from ark_assets.defs.partitions import dialogue_batches

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(
        "raw_dialogues", "quarantined_records", "tagged_dialogues", "tag_collisions"
    ),
    partitions_def=dialogue_batches,
    description="Validates and tags one arrived dialogue file (one batch partition).",
)
