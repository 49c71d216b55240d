"""A run killed with ``kill -9`` inside a pooled step keeps its slot until it is reaped: then
it is failed with the reason, the slot is free, and the next run of the pool goes through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from ark_assets.defs.operations.dead_runs import dead_run_sensor, dead_runs, reap_dead_runs

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import dagster as dg

    @dg.asset(pool="duckdb")
    def pooled() -> None:
        Path(sys.argv[1]).write_text("in the step")
        time.sleep(600)

    with dg.DagsterInstance.get() as instance:
        dg.materialize([pooled], instance=instance)
    """
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _killed_run(tmp_path: Path) -> None:
    """A child process that materializes a ``duckdb``-pool asset, killed inside the step."""
    script, marker = tmp_path / "child.py", tmp_path / "in-step"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(marker)])
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the child never ran"
        time.sleep(0.2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def test_a_killed_run_is_failed_and_frees_its_pool_slot(home: Path, tmp_path: Path) -> None:
    _killed_run(tmp_path)
    with dg.DagsterInstance.get() as instance:
        (record,) = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.STARTED  # what Dagster leaves
        assert instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
        assert [run.run_id for run, _ in dead_runs(instance)] == [record.dagster_run.run_id]

        context = dg.build_sensor_context(instance=instance)
        skip = dead_run_sensor(context)
        assert isinstance(skip, dg.SkipReason) and "1 dead run" in (skip.skip_message or "")

        run = instance.get_run_by_id(record.dagster_run.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
        failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "is gone" in (failure[-1].dagster_event.message or "")  # type: ignore[union-attr]
        assert reap_dead_runs(instance) == []  # once only

        @dg.asset(pool="duckdb")
        def after() -> int:
            return 1

        assert dg.materialize([after], instance=instance).success  # not blocked


def test_a_live_run_is_left_alone(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        seen: list[list[str]] = []

        @dg.asset(pool="duckdb")
        def looks(context) -> None:  # type: ignore[no-untyped-def]  # (local: no string annotation)
            seen.append([run.run_id for run, _ in dead_runs(context.instance)])

        assert dg.materialize([looks], instance=instance).success
        assert seen == [[]]  # its own process is alive: not reaped while it runs
