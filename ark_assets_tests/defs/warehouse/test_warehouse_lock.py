"""dbt writes the warehouse under the lock the IO manager takes. A real multiprocess run (the
`dagster asset materialize` CLI, as a user runs it) whose Python step and dbt step want the
file at once, while a DuckDB session is open on it, never sees "Could not set lock on file":
one step waits for the session, the other for the step, and both succeed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ark_assets_tests.conftest import SAMPLES
from ark_assets_tests.defs.warehouse.conftest import Built
from ark_assets_tests.lib.warehouse.holders import RunOutput, outside_session

REPO = Path(__file__).resolve().parents[3]
# A Python step (the knowledge base's two tables) and the dbt step (models not downstream of
# it) in one run: the multiprocess executor starts both at once.
PYTHON_STEP = ("kb_sources", "kb_quarantined_records")
DBT_STEP = ("stg_raw_dialogues", "stg_quarantined_records", "dialogue_stats", "quarantine_rates")


def test_a_multiprocess_run_never_sees_a_lock_error(built: Built, tmp_path: Path) -> None:
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    data.mkdir()
    built.copy(data)
    (data / "kb_inbox").mkdir()
    shutil.copy(SAMPLES / "kb_qa_sample.jsonl", data / "kb_inbox")
    env = {**os.environ, "DAGSTER_HOME": str(home), "ARK_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
               "ark_assets.definitions", "--select", ",".join(PYTHON_STEP + DBT_STEP)]  # fmt: skip
    with outside_session(data / "warehouse.duckdb", 600) as session:
        run = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        log = RunOutput(run)
        # One step holds the lock and waits for the session; the other waits for that step.
        log.wait_for(f"(PID {session.pid})", "is held by pid")
    assert run.wait(timeout=600) == 0, log.text()[-4000:]
    output = log.text()
    assert "Could not set lock" not in output and "STEP_FAILURE" not in output
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in (*PYTHON_STEP, *DBT_STEP):
            assert instance.get_latest_materialization_event(dg.AssetKey(key)), key
