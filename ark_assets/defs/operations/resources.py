"""The operations resources: where alerts go."""

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ark_assets.defs.resources import data_dir, env_setting
from ark_assets.lib.operations.alerts import Delivery, append_log, post


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
