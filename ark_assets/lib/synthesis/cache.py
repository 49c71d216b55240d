"""The persistent teacher cache: one SQLite file, safe across threads and processes.

Every validated teacher answer is stored as soon as it arrives, keyed by (backend, model, output
schema, prompt hash). Re-materializing a partition therefore costs no call for anything already
answered, and a run that crashed half way resumes where it stopped. It is a separate file from
the DuckDB warehouse on purpose: the warehouse has one writer at a time, while synthesis writes
here from many threads (and processes) throughout a run. SQLite in WAL mode with a busy timeout
serialises those writes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from ark_assets.lib.operations.filesystems import require_local

_SCHEMA = """
create table if not exists teacher_cache (
    key text primary key,
    backend text not null,
    model text not null,
    stage text not null,
    output text not null,
    value text not null,
    created_at real not null
)
"""


def cache_key(backend: str, model: str, output: str, schema: str, prompt: object) -> str:
    """The cache key of one teacher request; ``schema`` is the output's JSON schema text."""
    canonical = json.dumps(prompt, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    prompt_hash = hashlib.sha256(canonical.encode()).hexdigest()
    schema_hash = hashlib.sha256(schema.encode()).hexdigest()
    identity = json.dumps([backend, model, output, schema_hash, prompt_hash])
    return hashlib.sha256(identity.encode()).hexdigest()


class TeacherCache:
    """Validated teacher answers on disk (``data/cache/teacher.sqlite`` by default)."""

    def __init__(self, path: Path) -> None:
        require_local(path, "the teacher cache (SQLite in WAL mode)", "ARK_TEACHER_CACHE")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # One connection shared by the threads of this process (each use under the lock);
        # other processes get their own and SQLite's file locks plus the timeout serialise them.
        self._conn = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=normal")
        self._conn.execute(_SCHEMA)

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "select value from teacher_cache where key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, *, backend: str, model: str, stage: str, output: str, value: str):
        with self._lock:
            self._conn.execute(
                "insert or replace into teacher_cache values (?, ?, ?, ?, ?, ?, ?)",
                (key, backend, model, stage, output, value, time.time()),
            )

    def count(self) -> int:
        with self._lock:
            row = self._conn.execute("select count(*) from teacher_cache").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
