"""Real processes against one warehouse: concurrent batches, and a kill -9 mid-materialization.

These run the `dagster asset materialize` CLI with the repo's instance config, as a user or a
backfill would, so the file lock, the transactions and the `duckdb` pool are all exercised.
"""

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ark_assets.lib.ingest.inbox import copy_into
from ark_assets.testing.dialogues import write_jsonl
from ark_assets_tests.conftest import SAMPLES
from ark_assets_tests.lib.warehouse.holders import RunOutput, step_holding_the_lock

REPO = Path(__file__).resolve().parents[3]
INGEST = "raw_dialogues,quarantined_records,tagged_dialogues,tag_collisions"
IN_PROCESS = ("--config-json", '{"execution": {"config": {"in_process": {}}}}')


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home), "ARK_DATA_DIR": str(tmp_path / "data")}


def _register(env: dict[str, str], files: list[Path]) -> list[str]:
    from ark_assets.defs.ingest.sensors import dialogue_inbox_sensor
    from ark_assets.defs.resources import DialogueInbox

    data = Path(env["ARK_DATA_DIR"])
    copy_into(data / "inbox", files)
    inbox = DialogueInbox(path=str(data / "inbox"), landing_path=str(data / "landing"))
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = dialogue_inbox_sensor(
            dg.build_sensor_context(instance=instance, resources={"inbox": inbox})
        )
        assert isinstance(result, dg.SensorResult)
        keys = list(result.dynamic_partitions_requests[0].partition_keys or [])
        instance.add_dynamic_partitions("dialogue_batches", keys)
    return keys


def _materialize(env: dict[str, str], key: str, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize",
        "-m", "ark_assets.definitions", "--select", INGEST, "--partition", key, *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _rows(env: dict[str, str], sql: str) -> list[tuple]:
    database = Path(env["ARK_DATA_DIR"]) / "warehouse.duckdb"
    with duckdb.connect(str(database), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_two_batches_materialize_at_once_without_lock_errors(env: dict[str, str]) -> None:
    """Two CLI processes (a backfill's runs) write one warehouse at once: both wait while a step
    holds the lock, then race for it when it goes; neither sees DuckDB's lock error.
    (test_warehouse_lock.py has the steps of one multiprocess run competing.)"""
    keys = _register(
        env, [SAMPLES / "dialogues_zh_sample.jsonl", SAMPLES / "dialogues_en_sample.jsonl"]
    )
    database = Path(env["ARK_DATA_DIR"]) / "warehouse.duckdb"
    with step_holding_the_lock(database, 600) as holder:
        runs = [_materialize(env, key, *IN_PROCESS) for key in keys]
        logs = [RunOutput(run) for run in runs]
        for log in logs:
            log.wait_for(f"is held by pid {holder.pid} ")
    for run, log in zip(runs, logs, strict=True):
        assert run.wait(timeout=300) == 0, log.text()[-3000:]
        assert "Could not set lock" not in log.text()
    counts = dict(_rows(env, "select batch, count(*) from ark.tagged_dialogues group by 1"))
    assert counts == {key: 300 for key in keys}


def _lock_is_held(env: dict[str, str]) -> bool:
    lock = Path(env["ARK_DATA_DIR"]) / "warehouse.duckdb.lock"
    if not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_kill_9_during_a_warehouse_write_then_rerun(env: dict[str, str], tmp_path: Path) -> None:
    big = write_jsonl(tmp_path / "big.jsonl", 5_000)
    (key,) = _register(env, [big])
    first = _materialize(env, key, *IN_PROCESS)
    assert first.wait(timeout=300) == 0
    expected = _rows(env, f"select count(*) from ark.raw_dialogues where batch = '{key}'")

    victim = _materialize(env, key, *IN_PROCESS)
    deadline = time.monotonic() + 240
    while not _lock_is_held(env) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert victim.poll() is None, "the re-run finished before it could be interrupted"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()

    whole = [(expected[0][0], expected[0][0])]
    for table in ("raw_dialogues", "tagged_dialogues"):
        # The interrupted transaction rolled back: the batch is whole, never half-written.
        assert _rows(env, _count_sql(table, key)) == whole
    rerun = _materialize(env, key, *IN_PROCESS)
    assert rerun.wait(timeout=300) == 0
    assert _rows(env, _count_sql("raw_dialogues", key)) == [(5_000, 5_000)] == whole


def _count_sql(table: str, batch: str) -> str:
    return f"select count(*), count(distinct record_index) from ark.{table} where batch = '{batch}'"


# Runs the ingest step in this process, and SIGKILLs it the moment a committed warehouse write
# has left either ingest table holding rows: what `kill -9` between two writes would leave.
KILL_AFTER_FIRST_INGEST_WRITE = """
import os, signal, sys
from contextlib import contextmanager
import dagster as dg, duckdb
from ark_assets.lib import warehouse

real_connect = warehouse.connect

@contextmanager
def connect(database, *args, **kwargs):
    with real_connect(database, *args, **kwargs) as conn:
        yield conn
    with duckdb.connect(str(database), read_only=True) as check:
        tables = {t for (t,) in check.execute(
            "select table_name from information_schema.tables where table_schema = 'ark'"
        ).fetchall()}
    if tables & {"raw_dialogues", "quarantined_records"}:
        os.kill(os.getpid(), signal.SIGKILL)

warehouse.connect = connect
from ark_assets.definitions import defs
from ark_assets.defs.runs import runnable
definitions = defs()
with dg.DagsterInstance.get() as instance:
    dg.materialize(
        runnable(definitions),
        selection=dg.AssetSelection.assets("raw_dialogues", "quarantined_records"),
        partition_key=sys.argv[1],
        instance=instance,
        resources=dict(definitions.resources or {}),
    )
"""


def test_kill_9_between_the_two_ingest_tables_leaves_them_consistent(
    env: dict[str, str], tmp_path: Path
) -> None:
    """#18 item 8: 5,000 raw rows, 0 quarantine rows and metadata claiming 50 quarantined."""
    batch = write_jsonl(tmp_path / "mixed.jsonl", 200)
    with batch.open("a") as handle:
        handle.write("not json\n" * 50)
    (key,) = _register(env, [batch])
    victim = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_FIRST_INGEST_WRITE, key],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert victim.returncode == -signal.SIGKILL, victim.stderr.decode()[-3000:]
    stored = {
        table: _rows(env, f"select count(*) from ark.{table} where batch = '{key}'")[0][0]
        for table in ("raw_dialogues", "quarantined_records")
    }
    assert stored == {"raw_dialogues": 200, "quarantined_records": 50}  # both, never one
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for asset in ("raw_dialogues", "quarantined_records"):
            for record in instance.fetch_materializations(dg.AssetKey(asset), limit=5).records:
                meta = record.asset_materialization.metadata  # type: ignore[union-attr]
                assert meta["accepted"].value == stored["raw_dialogues"]
                assert meta["quarantined"].value == stored["quarantined_records"]
