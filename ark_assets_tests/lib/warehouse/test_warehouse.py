"""The warehouse lock under contention: a DuckDB session opened outside the platform, a step
holding the lock, and the bound on how long a connection waits for either."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from ark_assets.lib.warehouse import LockWait, WarehouseLocked, connect, held
from ark_assets_tests.lib.warehouse.holders import outside_session, step_holding_the_lock


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with connect(path) as conn:
        conn.execute("create schema ark; create table ark.t as select 1 as x")
    return path


def test_an_open_session_made_writes_fail_now_they_wait_and_say_why(database: Path) -> None:
    messages: list[str] = []
    with outside_session(database, 1.5) as session:
        # What every pipeline write did while a `duckdb` shell was open (issue #18, item 9).
        with pytest.raises(duckdb.IOException, match="Could not set lock on file"):
            duckdb.connect(str(database))
        start = time.monotonic()
        with connect(database, LockWait(timeout_s=60, log=messages.append)) as conn:
            conn.execute("insert into ark.t values (2)")
        waited = time.monotonic() - start
    assert waited > 0.5
    (message,) = messages
    assert "is open in another process" in message and f"PID {session.pid}" in message
    assert "ark sql" in message  # the fix, in the log line
    with connect(database) as conn:
        assert conn.execute("select count(*) from ark.t").fetchone() == (2,)


def test_the_wait_is_bounded_and_the_error_says_what_to_do(database: Path) -> None:
    with outside_session(database, 30), pytest.raises(WarehouseLocked) as raised:
        start = time.monotonic()
        with connect(database, LockWait(timeout_s=0.5, log=lambda _: None)):
            pass
    assert time.monotonic() - start < 10
    message = str(raised.value)
    assert "ARK_WAREHOUSE_LOCK_TIMEOUT_S=0.5" in message and "Close that DuckDB session" in message


def test_a_step_holding_the_lock_is_named_while_another_waits(database: Path) -> None:
    messages: list[str] = []
    wait = LockWait(timeout_s=60, log=messages.append)
    with step_holding_the_lock(database, 1.0) as step, connect(database, wait):
        pass
    assert messages and f"held by pid {step.pid}" in messages[0]


def test_held_keeps_platform_connections_out_but_not_the_subprocess_it_is_for(
    database: Path,
) -> None:
    opens_directly = [sys.executable, "-c", f"import duckdb; duckdb.connect({str(database)!r})"]
    waits = [
        sys.executable, "-c",
        "from ark_assets.lib.warehouse import LockWait, connect; "
        f"connect({str(database)!r}, LockWait(timeout_s=0.3)).__enter__()",
    ]  # fmt: skip
    with held(database, LockWait(timeout_s=5)):
        assert subprocess.run(opens_directly).returncode == 0  # dbt opens the file itself
        refused = subprocess.run(waits, capture_output=True, text=True)
    assert refused.returncode != 0 and "WarehouseLocked" in refused.stderr


def test_concurrent_connections_take_turns(database: Path) -> None:
    def write(value: int) -> None:
        with connect(database) as conn:
            conn.execute("insert into ark.t values (?)", [value])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with connect(database) as conn:
        assert conn.execute("select count(*) from ark.t").fetchone() == (5,)
