"""Read-only queries over the warehouse that never hold it for long (``ark sql``).

A query runs on a read-only connection under the warehouse lock, so it can neither write nor
collide with a pipeline step; it is interrupted after ``timeout_s`` and returns at most
``max_rows`` rows, so the lock is released within seconds whatever is asked. A pipeline step that
wanted the warehouse meanwhile waits (``lib.warehouse``), it does not fail.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ark_assets.lib.warehouse import LockWait, read_only

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ROWS = 200


class QueryTimeout(TimeoutError):
    """The query ran past its time bound and was interrupted."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows than max_rows matched
    seconds: float


def run_query(
    database: str | Path,
    sql: str,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    wait: LockWait | None = None,
) -> QueryResult:
    """``sql`` on a read-only connection: the first ``max_rows`` rows, within ``timeout_s``."""
    if not Path(database).exists():
        raise FileNotFoundError(f"no warehouse at {database}: run `ark demo` or set ARK_WAREHOUSE")
    start = time.monotonic()
    with read_only(database, wait) as conn:
        timer = threading.Timer(timeout_s, conn.interrupt)
        timer.start()
        try:
            cursor = conn.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(max_rows + 1) if columns else []
        except duckdb.InterruptException as error:
            raise QueryTimeout(
                f"the query ran past {timeout_s:g} s and was stopped (it holds the warehouse "
                "lock while it runs); narrow it with a where clause or a limit, or raise --timeout"
            ) from error
        finally:
            timer.cancel()
    return QueryResult(columns, rows[:max_rows], len(rows) > max_rows, time.monotonic() - start)
