"""A failed run becomes an alert: in the alert log, and POSTed as JSON to a webhook receiver
on 127.0.0.1; a receiver that is down costs bounded attempts and never fails the sensor."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ark_assets.defs.operations.alerts import run_failure_alert_sensor
from ark_assets.defs.operations.resources import Alerts
from ark_assets.lib.operations.alerts import post


class Receiver:
    """A webhook receiver on 127.0.0.1 answering ``statuses`` in turn (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(statuses.pop(0) if statuses else 200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    served = Receiver([503])  # the first attempt finds it overloaded
    yield served
    served.close()


def _failed_run(instance: dg.DagsterInstance) -> dg.RunFailureSensorContext:
    @dg.asset
    def broken() -> None:
        raise ValueError("batch b1: record 3 breaks rule dialogue_id_required")

    result = dg.materialize([broken], instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor", dagster_event=failure,
        dagster_instance=instance, dagster_run=run,
    ).for_run_failure()  # fmt: skip


def test_a_failed_run_is_logged_and_posted(receiver: Receiver, tmp_path: Path) -> None:
    log = tmp_path / "alerts" / "alerts.jsonl"
    alerts = Alerts(webhook_url=receiver.url, ui_url="http://127.0.0.1:3000",
                    log_path=str(log), timeout_s=5)  # fmt: skip
    with dg.instance_for_test() as instance:
        context = _failed_run(instance)
        run_failure_alert_sensor(context, alerts=alerts)
    first, second = receiver.bodies  # 503, retried, then 200
    assert first == second
    assert second["event"] == "run_failure" and second["run_id"] == context.dagster_run.run_id
    (step,) = second["failed_steps"]
    assert step["step"] == "broken"
    assert step["error"].endswith("batch b1: record 3 breaks rule dialogue_id_required")
    assert second["run_url"] == f"http://127.0.0.1:3000/runs/{context.dagster_run.run_id}"
    (logged,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert logged["run_id"] == second["run_id"]
    assert logged["webhook"].startswith("HTTP 200 from 127.0.0.1")
    assert "secret-token" not in log.read_text()  # the URL's token is never written


def test_a_receiver_that_is_down_does_not_fail_the_sensor(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    log = tmp_path / "alerts.jsonl"
    alerts = Alerts(webhook_url=url, log_path=str(log), timeout_s=1, attempts=2)
    with dg.instance_for_test() as instance:
        run_failure_alert_sensor(_failed_run(instance), alerts=alerts)
    (logged,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert logged["webhook"] == "ConnectionError reaching 127.0.0.1"
    delivery = post(url, {"x": 1}, attempts=3, timeout_s=1, sleep=lambda _: None)
    assert (delivery.delivered, delivery.attempts) == (False, 3)


def test_a_client_error_is_not_retried(tmp_path: Path) -> None:
    refused = Receiver([404])
    try:
        delivery = post(refused.url, {"x": 1}, sleep=lambda _: None)
    finally:
        refused.close()
    assert (delivery.delivered, delivery.attempts, len(refused.bodies)) == (False, 1, 1)
    assert delivery.detail == "HTTP 404 from 127.0.0.1"
