"""Run-failure alerts: every failed run of this code location becomes one alert — a line in the
sensor's log, a JSON line in ``data/alerts/alerts.jsonl``, and a POST to the webhook in
``ARK_ALERT_WEBHOOK_URL`` when one is set (``lib/operations/alerts.py``: bounded retries, never
raises, the URL never logged).

An alert names the run, job, partition, failed steps and the first line of each error — the
platform's errors name files, records and rules, not dialogue text — clipped to 400
characters each; ``ARK_UI_URL`` (e.g. http://127.0.0.1:3000) adds a link to the run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ark_assets.defs.operations.resources import Alerts
from ark_assets.lib.operations.alerts import clip


def failure_alert(context: dg.RunFailureSensorContext, ui_url: str) -> dict[str, Any]:
    """The alert for the failed run in ``context``."""
    run = context.dagster_run
    steps = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        while error and error.cause and "Error occurred while executing" in error.message:
            error = error.cause  # Dagster's wrapper: the user code's error is its cause
        message = (error.message if error else "failed").strip().splitlines()[0]
        steps.append({"step": event.step_key, "error": clip(message)})
    return {
        "event": "run_failure",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "reason": clip(context.failure_event.message or "the run failed"),
        "failed_steps": steps,
        "run_url": f"{ui_url.rstrip('/')}/runs/{run.run_id}" if ui_url else None,
    }


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every failed run: an alert in data/alerts/alerts.jsonl and, when "
    "ARK_ALERT_WEBHOOK_URL is set, a JSON POST to it (bounded retries; never fails itself).",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: Alerts) -> None:
    alert = failure_alert(context, alerts.ui_url)
    context.log.error(
        f"run {alert['run_id']} ({alert['job']}) failed: {alert['reason']}"
        + "".join(f"; {s['step']}: {s['error']}" for s in alert["failed_steps"])
    )
    delivery = alerts.send(alert)
    if delivery is not None and not delivery.delivered:
        context.log.warning(f"alert webhook: not delivered after {delivery.attempts} "
                            f"attempt(s): {delivery.detail}")  # fmt: skip
