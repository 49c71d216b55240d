"""``run_query`` (``ark sql``): read-only, bounded in rows and time, and it waits (never fails)
while a step holds the warehouse."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from ark_assets.lib.warehouse import LockWait, connect
from ark_assets.lib.warehouse.query import QueryTimeout, run_query
from ark_assets_tests.lib.warehouse.holders import step_holding_the_lock


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with connect(path) as conn:
        conn.execute("create schema ark; create table ark.t as select range as x from range(10)")
    return path


def test_rows_are_capped_and_said_so(database: Path) -> None:
    result = run_query(database, "select x from ark.t order by x", max_rows=3)
    assert result.columns == ["x"] and result.rows == [(0,), (1,), (2,)] and result.truncated
    assert not run_query(database, "select count(*) from ark.t").truncated


def test_writes_are_refused(database: Path) -> None:
    with pytest.raises(duckdb.Error, match="read-only"):
        run_query(database, "insert into ark.t values (99)")


def test_a_long_query_is_stopped_and_the_lock_released(database: Path) -> None:
    start = time.monotonic()
    with pytest.raises(QueryTimeout, match="narrow it"):
        run_query(database, "select count(*) from range(1000000000000)", timeout_s=0.5)
    assert time.monotonic() - start < 10
    with connect(database, LockWait(timeout_s=0.5)) as conn:  # nothing still holds it
        conn.execute("select 1")


def test_it_waits_while_a_step_writes(database: Path) -> None:
    messages: list[str] = []
    with step_holding_the_lock(database, 1.0):
        result = run_query(
            database, "select count(*) from ark.t", wait=LockWait(log=messages.append)
        )
    assert result.rows == [(10,)] and "held by pid" in messages[0]
