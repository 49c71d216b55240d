"""Other processes that hold the warehouse: a DuckDB session opened outside the platform (a
``duckdb`` shell, a notebook), and a platform step holding the warehouse lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

_SESSION = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("open", flush=True)
time.sleep(float(sys.argv[2]))
"""
_STEP = """
import sys, time
from ark_assets.lib.warehouse import connect
with connect(sys.argv[1]):
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@contextmanager
def _holding(code: str, database: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(database), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "open"
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def outside_session(
    database: Path, seconds: float
) -> AbstractContextManager[subprocess.Popen[str]]:
    """A process with the database open read-write for ``seconds`` (DuckDB's own file lock)."""
    return _holding(_SESSION, database, seconds)


def step_holding_the_lock(
    database: Path, seconds: float
) -> AbstractContextManager[subprocess.Popen[str]]:
    """A process holding a platform connection (the warehouse lock) for ``seconds``."""
    return _holding(_STEP, database, seconds)
