"""Importing one evaluation file: its items, its quarantine and the replies it carries."""

import dagster as dg

from ark_assets.defs.partitions import eval_files

eval_import_job = dg.define_asset_job(
    "eval_import_job",
    selection=dg.AssetSelection.assets("eval_items", "eval_quarantine", "imported_predictions"),
    partitions_def=eval_files,
    description="Imports one eval-inbox file (run by eval_inbox_sensor).",
)
