"""The drop folder for dialogue files, and the batch keys that name each arrived file.

Each arrived file becomes one dynamic partition (a *batch*) whose key is the file name plus the
first 12 hex digits of its sha256: the same content dropped twice (under any name) maps to an
existing batch and is never ingested twice; a modified file is a new batch. On first
materialization the file is copied into a content-addressed landing area, so a batch can be
re-materialized after the inbox file is gone or changed.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ark_assets.lib.artifacts import atomic_write_bytes
from ark_assets.lib.hashing import sha256_bytes, sha256_file

DIGEST_CHARS = 12
_SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Files still being written by an uploader: hidden files and the usual partial-download suffixes.
_IN_FLIGHT_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")


def safe_name(file_name: str) -> str:
    """The file name with characters that partition keys and paths handle badly replaced."""
    return _UNSAFE.sub("_", file_name).strip("_") or "file"


def batch_key(file_name: str, digest: str) -> str:
    """``dialogues_zh.jsonl__3f2a9c1b0d4e``: readable in the UI, unique by content."""
    return f"{safe_name(file_name)}{_SEPARATOR}{digest[:DIGEST_CHARS]}"


def batch_digest(key: str) -> str:
    """The content-digest prefix encoded in a batch key."""
    return key.rsplit(_SEPARATOR, 1)[-1]


def batch_file_name(key: str) -> str:
    return key.rsplit(_SEPARATOR, 1)[0]


def is_in_flight(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower().endswith(_IN_FLIGHT_SUFFIXES)


@dataclass(frozen=True)
class ArrivedFile:
    path: Path
    sha256: str

    @property
    def key(self) -> str:
        return batch_key(self.path.name, self.sha256)


class ScanCache:
    """``name -> (size, mtime_ns, sha256)`` so a sensor tick re-hashes only changed files."""

    def __init__(self, entries: dict[str, list] | None = None) -> None:
        self.entries = entries or {}

    @classmethod
    def from_cursor(cls, cursor: str | None) -> ScanCache:
        return cls(json.loads(cursor) if cursor else None)

    def to_cursor(self) -> str:
        return json.dumps(self.entries, sort_keys=True)

    def digest(self, path: Path) -> str:
        stat = path.stat()
        cached = self.entries.get(path.name)
        if cached and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            return str(cached[2])
        digest = sha256_file(path)
        self.entries[path.name] = [stat.st_size, stat.st_mtime_ns, digest]
        return digest


def scan(inbox: Path, cache: ScanCache) -> list[ArrivedFile]:
    """Complete files in the inbox, in name order."""
    if not inbox.is_dir():
        return []
    files = [p for p in sorted(inbox.iterdir()) if p.is_file() and not is_in_flight(p)]
    present = {p.name for p in files}
    cache.entries = {name: entry for name, entry in cache.entries.items() if name in present}
    return [ArrivedFile(path, cache.digest(path)) for path in files]


def land(key: str, inbox: Path, landing: Path) -> tuple[str, bytes, str]:
    """``(file name, bytes, sha256)`` of batch ``key``, landing the inbox file on first use.

    Raises FileNotFoundError when neither the landing area nor the inbox holds the content.
    """
    landed = sorted((landing / key).glob("*")) if (landing / key).is_dir() else []
    if landed:
        data = landed[0].read_bytes()
        return landed[0].name, data, sha256_bytes(data)
    wanted = batch_digest(key)
    name = batch_file_name(key)
    candidates = sorted(inbox.iterdir()) if inbox.is_dir() else []
    for candidate in (c for c in candidates if safe_name(c.name) == name):
        data = candidate.read_bytes()
        digest = sha256_bytes(data)
        if digest.startswith(wanted):
            atomic_write_bytes(landing / key / candidate.name, data)
            return candidate.name, data, digest
    raise FileNotFoundError(
        f"batch {key!r}: no file named like {name!r} with sha256 {wanted}… in {inbox} and no "
        f"landed copy in {landing / key}; drop the original file into the inbox again"
    )


def copy_into(inbox: Path, files: list[Path]) -> list[Path]:
    """Drop files into the inbox atomically (copy to a hidden temp name, then rename)."""
    inbox.mkdir(parents=True, exist_ok=True)
    dropped = []
    for source in files:
        target = inbox / source.name
        tmp = inbox / f".{source.name}.tmp"
        shutil.copyfile(source, tmp)
        tmp.replace(target)
        dropped.append(target)
    return dropped
