"""The training job: training assets run only here, one at a time, never eagerly.

A Dagster run has exactly one executor, so the trainer assets get a job of their own with the
in-process executor (the heavy work happens in the Pipes child process or pod), the `gpu` pool
(limit 1) and the `ark/accelerator: gpu` tag (one such run at a time through the instance's
`tag_concurrency_limits`). The data assets keep the default multiprocess executor.
"""

import dagster as dg

TRAINING_TAGS = {"ark/accelerator": "gpu"}

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("sft_adapter", "dpo_adapter"),
    executor_def=dg.in_process_executor,
    tags=TRAINING_TAGS,
    description="Trains the SFT LoRA adapter and the DPO adapter that continues it (launch by "
    "hand or on a schedule).",
)
