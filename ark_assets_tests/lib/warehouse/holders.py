"""Other processes that hold the warehouse: a DuckDB session opened outside the platform (a
``duckdb`` shell, a notebook), and a platform step holding the warehouse lock."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
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


class RunOutput:
    """A process's output (stdout, text or bytes), read as it comes by a thread of its own."""

    def __init__(self, run: subprocess.Popen) -> None:
        assert run.stdout is not None
        stdout = run.stdout
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(
                line.decode() if isinstance(line, bytes) else line for line in stdout
            ),
            daemon=True,
        )
        self._reader.start()

    def wait_for(self, *texts: str, timeout_s: float = 300) -> None:
        """Until every one of ``texts`` has been printed (each on some line)."""
        deadline = time.monotonic() + timeout_s
        while not all(any(t in line for line in self.lines) for t in texts):
            assert time.monotonic() < deadline, f"never logged {texts}: {self.text()[-3000:]}"
            time.sleep(0.2)

    def text(self) -> str:
        """What was printed so far (all of it once the process has ended)."""
        self._reader.join(timeout=10)
        return "".join(self.lines)
