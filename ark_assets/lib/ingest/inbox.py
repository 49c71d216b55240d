"""The drop folder for dialogue files, and the batch keys that name each arrived file.

Each arrived file becomes one dynamic partition (a *batch*) whose key is the file name plus the
first 12 hex digits of its sha256: the same content dropped twice under a name of the same
format maps to an existing batch and is never ingested twice; a modified file, or the same bytes
under another extension (read by another reader), is a new batch. On first materialization the
file is copied into a content-addressed landing area, so a batch can be re-materialized after
the inbox file is gone or changed.

Only regular files are read: a symbolic link in the inbox (to ``/etc/passwd``, to another
user's data) is never followed, copied or quoted, and a batch key that is not one this module
makes (``../../outside``) is refused before any path is built from it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ark_assets.lib.artifacts import atomic_writer
from ark_assets.lib.ingest.formats import file_suffix

DIGEST_CHARS = 12
_SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Every key batch_key makes, and nothing else: safe characters only, so never a path separator.
_BATCH_KEY = re.compile(rf"[A-Za-z0-9._-]+{_SEPARATOR}[0-9a-f]{{{DIGEST_CHARS}}}")
# The readable part of a key: a file name may have 255 bytes, and the key is also the name of
# the batch's landing folder (255 bytes at most), with the separator and digest after it.
MAX_KEY_NAME_CHARS = 200
# atomic_write_bytes stages a copy as ".<name>.<8 random>.tmp", 14 bytes longer than the name,
# and a file name has at most 255 bytes: longer names are shortened when landed.
MAX_LANDED_NAME_BYTES = 255 - 14
# Files still being written by an uploader: hidden files and the usual partial-download suffixes.
_IN_FLIGHT_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")


def safe_name(file_name: str) -> str:
    """The file name with characters that partition keys and paths handle badly replaced."""
    return _UNSAFE.sub("_", file_name).strip("_") or "file"


def key_name(file_name: str) -> str:
    """The readable part of a batch key: ``safe_name``, shortened to ``MAX_KEY_NAME_CHARS``
    keeping the extension (it picks the reader, and duplicates are recognised by it)."""
    name = safe_name(file_name)
    if len(name) <= MAX_KEY_NAME_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension) <= 16:
        return f"{stem[: MAX_KEY_NAME_CHARS - len(extension) - 1]}.{extension}"
    return name[:MAX_KEY_NAME_CHARS]


def batch_key(file_name: str, digest: str) -> str:
    """``dialogues_zh.jsonl__3f2a9c1b0d4e``: readable in the UI, unique by content."""
    return f"{key_name(file_name)}{_SEPARATOR}{digest[:DIGEST_CHARS]}"


def is_batch_key(key: str) -> bool:
    return _BATCH_KEY.fullmatch(key) is not None


def batch_digest(key: str) -> str:
    """The content-digest prefix encoded in a batch key."""
    return key.rsplit(_SEPARATOR, 1)[-1]


def batch_file_name(key: str) -> str:
    return key.rsplit(_SEPARATOR, 1)[0]


def batch_identity(key: str) -> tuple[str, str]:
    """``(format, digest prefix)``: what makes two batches the same input. Equal bytes under
    another extension are read by another reader (an empty ``.json`` is not an empty
    ``.jsonl``; a quarantined ``.txt`` renamed ``.jsonl`` is new input)."""
    return file_suffix(batch_file_name(key)), batch_digest(key)


def is_in_flight(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower().endswith(_IN_FLIGHT_SUFFIXES)


class NotARegularFile(OSError):
    """An inbox or landing entry that is a symbolic link, a folder, a device or a pipe."""


@contextmanager
def open_regular(path: Path) -> Iterator[io.BufferedReader]:
    """``path`` opened for reading, refusing anything but a regular file.

    ``O_NOFOLLOW`` makes the check and the open one step: a file swapped for a link after it
    was listed is refused too, and ``O_NONBLOCK`` keeps a named pipe from blocking the open.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise NotARegularFile(f"{path} is a symbolic link: not read") from err
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path} is not a regular file: not read")
        yield handle


def read_regular(path: Path) -> bytes:
    with open_regular(path) as handle:
        return handle.read()


def _regular_files(folder: Path) -> list[Path]:
    """The regular files directly in ``folder`` (links are not followed), in name order."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_file(follow_symlinks=False))


def symbolic_links(inbox: Path) -> list[str]:
    """Names of the symbolic links in the inbox: never read, reported so they can be replaced
    by the files themselves."""
    if not inbox.is_dir():
        return []
    with os.scandir(inbox) as entries:
        return sorted(e.name for e in entries if e.is_symlink())


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
        with open_regular(path) as handle:
            info = os.fstat(handle.fileno())
            cached = self.entries.get(path.name)
            if cached and cached[0] == info.st_size and cached[1] == info.st_mtime_ns:
                return str(cached[2])
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        self.entries[path.name] = [info.st_size, info.st_mtime_ns, digest]
        return digest


def scan(inbox: Path, cache: ScanCache) -> list[ArrivedFile]:
    """Complete regular files in the inbox, in name order (links, folders and in-flight
    uploads are left alone)."""
    arrived = []
    for path in _regular_files(inbox):
        if is_in_flight(path):
            continue
        try:
            arrived.append(ArrivedFile(path, cache.digest(path)))
        except (FileNotFoundError, NotARegularFile):
            continue  # removed or replaced by a link since it was listed
    present = {a.path.name for a in arrived}
    cache.entries = {name: entry for name, entry in cache.entries.items() if name in present}
    return arrived


def landed_name(file_name: str) -> str:
    """The name a file is landed (and recorded) under: valid UTF-8 (a name the filesystem holds
    as other bytes gets U+FFFD) and short enough to be written atomically, extension kept."""
    name = os.fsencode(file_name).decode("utf-8", "replace")
    if len(name.encode()) <= MAX_LANDED_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not (dot and stem and len(extension.encode()) <= 16):
        stem, extension = name, ""
    room = MAX_LANDED_NAME_BYTES - len(extension.encode()) - len("….".encode())
    short = stem.encode()[:room].decode("utf-8", "ignore")
    return f"{short}…" + (f".{extension}" if extension else "")


def land(key: str, inbox: Path, landing: Path) -> tuple[str, bytes, str]:
    """``(file name, bytes, sha256)`` of batch ``key`` (``land_file``, then read whole)."""
    name, path, digest = land_file(key, inbox, landing)
    return name, read_regular(path), digest


def land_file(key: str, inbox: Path, landing: Path) -> tuple[str, Path, str]:
    """``(file name, landed path, sha256)`` of batch ``key``, landing the inbox file on first
    use; the file is copied and hashed in blocks, never held in memory whole.

    Raises ValueError for a key this module would not make (nothing is read), and
    FileNotFoundError when neither the landing area nor the inbox holds the content.
    """
    if not is_batch_key(key):
        raise ValueError(
            f"{key!r} is not a batch key (<file name>__<12 hex digits of its sha256>, made of "
            "letters, digits, '.', '_' and '-'); register files through the inbox sensor or "
            "`ark ingest`, never by hand"
        )
    landed = [p for p in _regular_files(landing / key) if not p.name.startswith(".")]
    if landed:
        with open_regular(landed[0]) as handle:
            return landed[0].name, landed[0], _copy_hashing(handle, None)
    wanted = batch_digest(key)
    name = batch_file_name(key)
    for candidate in (c for c in _regular_files(inbox) if key_name(c.name) == name):
        target = landing / key / landed_name(candidate.name)
        try:
            with open_regular(candidate) as handle, atomic_writer(target) as out:
                digest = _copy_hashing(handle, out)
                if not digest.startswith(wanted):
                    raise _OtherContent
        except (FileNotFoundError, NotARegularFile, _OtherContent):
            continue
        return target.name, target, digest
    raise FileNotFoundError(
        f"batch {key!r}: no file named like {name!r} with sha256 {wanted}… in {inbox} and no "
        f"landed copy in {landing / key}; drop the original file into the inbox again"
    )


class _OtherContent(Exception):
    """An inbox file with the batch's name but not its content (replaced since): skipped."""


def _copy_hashing(source: BinaryIO, target: BinaryIO | None) -> str:
    """sha256 of ``source``'s bytes, copied to ``target`` on the way when one is given."""
    digest = hashlib.sha256()
    while block := source.read(_BLOCK):
        digest.update(block)
        if target is not None:
            target.write(block)
    return digest.hexdigest()


_BLOCK = 1 << 20


def copy_into(inbox: Path, files: list[Path]) -> list[Path]:
    """Drop files into the inbox atomically (copy to a hidden temp name, then rename)."""
    inbox.mkdir(parents=True, exist_ok=True)
    dropped = []
    for source in files:
        target = inbox / source.name
        # A short temp name: the file's own may already be as long as a name can be.
        tmp = inbox / f".{uuid.uuid4().hex}.tmp"
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dropped.append(target)
    return dropped
