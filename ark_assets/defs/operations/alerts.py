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
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ark_assets.defs.resources import data_dir, env_setting
from ark_assets.lib.operations.alerts import Delivery, append_log, clip, post


class Alerts(dg.ConfigurableResource):
    """Where run-failure alerts go: the alert log always, the webhook when configured."""

    webhook_url: str = Field(default="", description="POST target; empty: the log only.")
    ui_url: str = Field(default="", description="The Dagster UI's address, for run links.")
    log_path: str = Field(description="JSON lines, one per alert.")
    timeout_s: float = Field(default=10.0, description="Per-attempt timeout of the webhook.")
    attempts: int = Field(default=3, description="Webhook attempts (connection errors, 5xx).")

    def send(self, alert: dict[str, Any]) -> Delivery | None:
        """Append ``alert`` to the log and POST it; the webhook's outcome, None without one."""
        delivery = (
            post(self.webhook_url, alert, timeout_s=self.timeout_s, attempts=self.attempts)
            if self.webhook_url
            else None
        )
        logged = {**alert, "webhook": delivery.detail if delivery else "not configured"}
        append_log(Path(self.log_path), logged)
        return delivery


def build_operations_resources() -> dict[str, Any]:
    return {
        "alerts": Alerts(
            webhook_url=env_setting("ARK_ALERT_WEBHOOK_URL", ""),
            ui_url=env_setting("ARK_UI_URL", ""),
            log_path=str(data_dir() / "alerts" / "alerts.jsonl"),
        )
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_operations_resources())


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
