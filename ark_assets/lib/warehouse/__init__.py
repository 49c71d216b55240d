"""The DuckDB warehouse: one file, one writer at a time, every write in a transaction.

DuckDB lets one process at a time open a database file for writing. Dagster's multiprocess
executor runs steps in separate processes, so every connection to the warehouse takes an
exclusive ``flock`` on a lock file beside it first. The lock is held only while the connection is
open (reading inputs or writing outputs), not for a whole step: a slow step (a teacher model,
a training run) never blocks the others from storing their tables.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


@contextmanager
def warehouse_lock(database: str | Path) -> Iterator[None]:
    lock_path = Path(f"{database}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def connect(database: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An exclusive, transactional connection: committed on success, rolled back on error."""
    with warehouse_lock(database):
        conn = duckdb.connect(str(database))
        try:
            conn.begin()
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    found = conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])
