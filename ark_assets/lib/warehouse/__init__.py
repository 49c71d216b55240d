"""The DuckDB warehouse: one file, one writer at a time, every write in a transaction.

DuckDB lets one process at a time open a database file for writing. Dagster's multiprocess
executor runs steps in separate processes, so every connection to the warehouse takes an
exclusive ``flock`` on a lock file beside it first. The lock is held only while the connection is
open (reading inputs or writing outputs), not for a whole step: a slow step (a teacher model,
a training run) never blocks the others from storing their tables. A dbt build (``held``) keeps
the lock for the whole build, without a connection of its own: dbt opens the file itself.

Two things can keep a connection out, and a connection waits for either, saying which, for at
most ``LockWait.timeout_s`` (``ARK_WAREHOUSE_LOCK_TIMEOUT_S``) before it fails with the fix:

- another step of the platform holding the lock file (the holder's pid is written into it);
- a process outside the platform (a ``duckdb`` shell, a notebook) holding DuckDB's own lock on
  the database file, which DuckDB reports as "Could not set lock on file". ``ark sql`` reads
  under the same lock file, read-only and for a bounded time, so looking at tables while runs go
  on never makes them fail.

The rest of the warehouse layer (group ``warehouse``, the dbt project in ``dbt_like_sql/``):
``project`` finds and parses the dbt project, ``query`` runs the read-only queries of ``ark sql``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import duckdb

# Ten minutes: longer than any one table write or dbt build of the demo, short enough that a
# forgotten shell session fails the run on the same day with a message rather than hanging it.
DEFAULT_LOCK_TIMEOUT_S = 600
_DUCKDB_LOCK_ERROR = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (.+?)(?: by user \S+)?\.(?: See also|$)")
_logger = logging.getLogger(__name__)


class WarehouseLocked(TimeoutError):
    """The warehouse stayed locked for the whole wait; the message names the holder and the fix."""


@dataclass(frozen=True)
class LockWait:
    """How long a connection waits for the warehouse, and where it says what it waits for."""

    timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    log: Callable[[str], None] = field(default=_logger.warning)
    # First retry after poll_s, doubling up to max_poll_s; the reason is logged again every
    # report_every_s so a long wait stays visible in the run's log.
    poll_s: float = 0.02
    max_poll_s: float = 1.0
    report_every_s: float = 30.0


class _Waiting:
    """One wait: the deadline, the back-off and when the reason was last logged."""

    def __init__(self, wait: LockWait) -> None:
        self.wait = wait
        self.start = time.monotonic()
        self.delay = wait.poll_s
        self.reported_at: float | None = None

    def again(self, reason: str, fix: str) -> None:
        """Sleep before the next try, logging ``reason``; raise when the wait is over."""
        now = time.monotonic()
        waited = now - self.start
        if waited >= self.wait.timeout_s:
            raise WarehouseLocked(
                f"{reason}; gave up after {waited:.0f} s (ARK_WAREHOUSE_LOCK_TIMEOUT_S="
                f"{self.wait.timeout_s:g}). {fix}"
            )
        if self.reported_at is None or now - self.reported_at >= self.wait.report_every_s:
            self.wait.log(f"{reason}; waiting (up to {self.wait.timeout_s:g} s). {fix}")
            self.reported_at = now
        time.sleep(min(self.delay, self.wait.timeout_s - waited))
        self.delay = min(self.delay * 2, self.wait.max_poll_s)


def lock_path(database: str | Path) -> Path:
    return Path(f"{database}.lock")


def _acquire(handle: IO[str], path: Path, wait: LockWait) -> None:
    waiting = _Waiting(wait)
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = path.read_text().strip() or "another process"
            waiting.again(
                f"the warehouse lock {path} is held by {holder}",
                "Another step is reading or writing the warehouse; if that process is gone or "
                "hung, end it.",
            )


@contextmanager
def warehouse_lock(database: str | Path, wait: LockWait | None = None) -> Iterator[None]:
    """The warehouse's lock file, exclusively; the holder's pid is written into it."""
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        _acquire(handle, path, wait or LockWait())
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open(database: str | Path, wait: LockWait, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection, waiting while a process outside the platform holds the file."""
    waiting = _Waiting(wait)
    while True:
        try:
            return duckdb.connect(str(database), read_only=read_only)
        except duckdb.IOException as error:
            if _DUCKDB_LOCK_ERROR not in str(error):
                raise
            found = _HOLDER.search(str(error))
            waiting.again(
                f"{database} is open in another process "
                f"({found.group(1) if found else 'outside the platform'})",
                "Close that DuckDB session (a duckdb shell, a notebook); to look at tables "
                'while runs go on, use `ark sql "select …"`, which never blocks them.',
            )


@contextmanager
def connect(
    database: str | Path, wait: LockWait | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An exclusive, transactional connection: committed on success, rolled back on error."""
    wait = wait or LockWait()
    with warehouse_lock(database, wait):
        conn = _open(database, wait, read_only=False)
        try:
            conn.begin()
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()


@contextmanager
def read_only(
    database: str | Path, wait: LockWait | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection under the lock (it blocks writers while it is open: keep it short)."""
    wait = wait or LockWait()
    with warehouse_lock(database, wait):
        conn = _open(database, wait, read_only=True)
        try:
            yield conn
        finally:
            conn.close()


@contextmanager
def held(database: str | Path, wait: LockWait | None = None) -> Iterator[None]:
    """The warehouse to this process alone, with no connection open: for a subprocess (dbt) that
    opens the file itself. Waits like ``connect`` for the lock and for an outside session, so the
    subprocess finds the file free."""
    wait = wait or LockWait()
    with warehouse_lock(database, wait):
        _open(database, wait, read_only=False).close()
        yield


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """True for a table or a view."""
    return table_type(conn, schema, table) is not None


def table_type(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> str | None:
    """``BASE TABLE``, ``VIEW``, or None when ``schema.table`` does not exist."""
    found = conn.execute(
        "select table_type from information_schema.tables "
        "where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return found[0] if found else None


def existing_tables(conn: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    rows = conn.execute(
        "select table_name from information_schema.tables where table_schema = ?", [schema]
    ).fetchall()
    return {name for (name,) in rows}


def relations(conn: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """Every ``(schema, table or view)`` of the database."""
    rows = conn.execute("select table_schema, table_name from information_schema.tables").fetchall()
    return {(schema, name) for schema, name in rows}


def count_rows(
    conn: duckdb.DuckDBPyConnection, relations: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Rows of each ``(schema, table)``."""
    counts = {}
    for schema, table in relations:
        name = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))
        found = conn.execute(f"select count(*) from {name}").fetchone()
        counts[(schema, table)] = int(found[0]) if found else 0
    return counts
