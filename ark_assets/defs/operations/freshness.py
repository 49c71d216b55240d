"""Adapter freshness: a warning when an adapter is older than its newest training data by more
than ``ARK_ADAPTER_FRESHNESS_HOURS`` (default 36: a nightly schedule plus a working day).

``adapter_fresh`` (one check per adapter, severity WARN) compares when the adapter was built
with when each of its inputs (``schedule.TRAINING_INPUTS``) was last materialized, any
partition; it runs hourly through the automation sensor and with every materialization of the
adapter. An adapter that was never built is not judged (the check passes and says so).
"""

import os
from datetime import UTC, datetime

import dagster as dg

from ark_assets.defs.operations.schedule import TRAINING_INPUTS, latest_materialization

DEFAULT_WINDOW_HOURS = 36.0
# Typed for checks: cron_tick_passed is declared for asset keys, and works for checks too.
HOURLY: dg.AutomationCondition[dg.AssetCheckKey] = dg.AutomationCondition.cron_tick_passed(
    "0 * * * *"
).with_label("hourly freshness check")  # type: ignore[assignment]


def window_hours() -> float:
    return float(os.environ.get("ARK_ADAPTER_FRESHNESS_HOURS", DEFAULT_WINDOW_HOURS))


def freshness(instance: dg.DagsterInstance, adapter: str, window: float) -> dg.AssetCheckResult:
    built = latest_materialization(instance, adapter)
    if built is None:
        return dg.AssetCheckResult(passed=True, metadata={"adapter": "never built: not judged"})
    inputs = {
        name: when
        for name in TRAINING_INPUTS[adapter]
        if (when := latest_materialization(instance, name)) is not None
    }
    newest = max(inputs, key=inputs.__getitem__, default=None)
    lag = max(0.0, (inputs[newest] - built) / 3600) if newest else 0.0

    def at(timestamp: float) -> str:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")

    return dg.AssetCheckResult(
        passed=lag <= window,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if lag <= window
        else (
            f"{adapter} is {lag:.1f} h older than its newest input ({newest}); the window is "
            f"{window:g} h: retrain (training_job) or check the nightly schedule"
        ),
        metadata={
            "adapter_built": at(built),
            "newest_input": f"{newest} at {at(inputs[newest])}" if newest else "none",
            "lag_hours": round(lag, 2),
            "window_hours": window,
        },
    )


def _check(adapter: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=adapter,
        name="adapter_fresh",
        blocking=False,
        automation_condition=HOURLY,
        description=f"Warns when {adapter} is older than its newest training input by more "
        "than ARK_ADAPTER_FRESHNESS_HOURS (default 36).",
    )
    def adapter_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return freshness(context.instance, adapter, window_hours())

    return adapter_fresh


sft_adapter_fresh = _check("sft_adapter")
dpo_adapter_fresh = _check("dpo_adapter")
