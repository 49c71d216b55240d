"""Running assets from code (the demo, ``ark forget --rebuild``, benchmarks and tests): every
asset and check as ``dg.materialize`` takes them, and the console settings such runs use."""

from __future__ import annotations

from typing import Any

import dagster as dg

# Step-by-step event logs belong in the UI (`make ui`); the terminal gets progress.
QUIET_LOGGERS = {"console": {"config": {"log_level": "WARNING"}}}


def runnable(definitions: dg.Definitions) -> list[Any]:
    """Every asset and check of the definitions, as ``dg.materialize`` takes them."""
    return [
        *(a for a in definitions.assets or [] if isinstance(a, dg.AssetsDefinition)),
        *(definitions.asset_checks or []),
    ]


def failure_reason(result: dg.ExecuteInProcessResult, limit: int = 400) -> str:
    """Why a run failed, in a line: each failed step's error and each failed ERROR-severity
    check (a blocking one stops what follows it). Messages are the code's own (file, record,
    rule): they name identifiers, never dialogue text."""
    reasons = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            error = event.step_failure_data.error
            while error and error.cause and "Error occurred while executing" in error.message:
                error = error.cause  # Dagster's wrapper: the user code's error is its cause
            message = (error.message if error else "failed").strip().splitlines()[0]
            reasons.append(f"step {event.step_key}: {message}")
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            asset = evaluation.asset_key.to_user_string()
            reasons.append(f"check {evaluation.check_name} on {asset} failed")
    text = "; ".join(reasons) or "the run failed (see its events in the UI)"
    return text if len(text) <= limit else text[:limit] + "…"
