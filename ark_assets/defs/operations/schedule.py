"""When training runs: nightly by default, and only when its inputs changed.

Training is the expensive step, so the adapters do not follow every new batch as the per-batch
assets do. ``nightly_training`` ticks on ``ARK_TRAINING_CRON`` (default ``0 2 * * *``, UTC) and
requests ``training_job`` for the adapters whose inputs were materialized after the adapter
itself (``sft_adapter``: any ``sft_records`` partition or the base model; ``dpo_adapter``: any
``dpo_triples`` partition, or a new SFT adapter — including the one this run trains); with
nothing changed the tick is skipped and says so. The run's ``ark/reason`` tag names what
changed, so the UI explains why it ran.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from ark_assets.defs.training.jobs import training_job

DEFAULT_TRAINING_CRON = "0 2 * * *"
# adapter -> the assets it is trained from
TRAINING_INPUTS: Mapping[str, tuple[str, ...]] = {
    "sft_adapter": ("sft_records", "base_model"),
    "dpo_adapter": ("dpo_triples", "sft_adapter"),
}


def training_cron() -> str:
    return os.environ.get("ARK_TRAINING_CRON", DEFAULT_TRAINING_CRON)


def latest_materialization(instance: dg.DagsterInstance, asset: str) -> float | None:
    """When ``asset`` (any partition) was last materialized, or None."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    return records[0].timestamp if records else None


def stale_adapters(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """adapter -> the inputs materialized after it (an adapter never built: every input that
    exists), in training order; adapters with nothing new are left out."""
    names = {name for adapter, inputs in TRAINING_INPUTS.items() for name in (adapter, *inputs)}
    latest = {name: latest_materialization(instance, name) for name in names}  # one read each
    stale: dict[str, list[str]] = {}
    for adapter, inputs in TRAINING_INPUTS.items():
        built = latest[adapter]
        changed = [
            name
            for name in inputs
            if (when := latest[name]) is not None and (built is None or when > built)
        ]
        changed += [name for name in inputs if name in stale and name not in changed]
        if changed:
            stale[adapter] = changed
    return stale


@dg.schedule(
    job=training_job,
    cron_schedule=training_cron(),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly (ARK_TRAINING_CRON): trains the adapters whose inputs changed since "
    "they were built; skips the night when nothing did.",
)
def nightly_training(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    stale = stale_adapters(context.instance)
    if not stale:
        return dg.SkipReason("no adapter's inputs changed since it was built: nothing to train")
    reason = "; ".join(f"{adapter}: {', '.join(inputs)} newer" for adapter, inputs in stale.items())
    return dg.RunRequest(
        run_key=f"nightly-{context.scheduled_execution_time.isoformat()}",
        asset_selection=[dg.AssetKey(adapter) for adapter in stale],
        tags={"ark/reason": reason[:200]},
    )
