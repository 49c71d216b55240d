"""The warehouse IO manager under an open DuckDB session: it waits and logs why, for a bounded
time, then fails saying what to do (issue #18, item 9: every write used to fail at once)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from ark_assets.defs.resources import WAREHOUSE_SCHEMA, WarehouseIOManager
from ark_assets_tests.lib.warehouse.holders import outside_session


@dg.asset
def small_table() -> pl.DataFrame:
    return pl.DataFrame({"x": [1, 2, 3]})


def _materialize(database: Path, lock_timeout_s: int) -> dg.ExecuteInProcessResult:
    io_manager = WarehouseIOManager(
        database=str(database), schema=WAREHOUSE_SCHEMA, lock_timeout_s=lock_timeout_s
    )
    return dg.materialize([small_table], resources={"io_manager": io_manager}, raise_on_error=False)


def test_a_write_waits_for_an_open_session_and_logs_the_cause(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    with dg.instance_for_test() as instance, outside_session(database, 2.0) as session:
        io_manager = WarehouseIOManager(database=str(database), schema=WAREHOUSE_SCHEMA)
        result = dg.materialize(
            [small_table], resources={"io_manager": io_manager}, instance=instance
        )
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert result.success
    assert any("is open in another process" in m and f"PID {session.pid}" in m for m in logs)
    assert not any("Could not set lock" in m and "Error" in m for m in logs)


def test_a_write_fails_after_the_bound_saying_what_to_do(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    with outside_session(database, 30):
        result = _materialize(database, lock_timeout_s=1)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    text = str(error.message) + "".join(str(c.message) for c in [error.cause] if c)
    assert "ark sql" in text and "ARK_WAREHOUSE_LOCK_TIMEOUT_S=1" in text
