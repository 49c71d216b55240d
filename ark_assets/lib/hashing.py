"""Content hashes: MedArk's conversation key, dialogue identity and file digests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

_CHUNK = 1 << 20


def medark_key(first_turn: Mapping[str, object]) -> str:
    """MedArk's conversation key: ``sha256(str(first_turn).encode()).hexdigest()``.

    ``str()`` of a dict is its repr with keys in insertion order, so ``first_turn`` must keep the
    key order the record was read with (``json.loads`` does). MedArk's later stages (AUV metric,
    DPO assembly) join on this key, so it has to be byte-identical to theirs.
    """
    return hashlib.sha256(str(dict(first_turn)).encode()).hexdigest()


def dialogue_sha256(turns: Sequence[Mapping[str, str]]) -> str:
    """Identity of a whole dialogue, independent of the key order inside each turn.

    Two records are exact duplicates when this digest matches; two records *collide* when their
    ``medark_key`` matches but this digest does not. The repr of a list of (patient, doctor)
    tuples is unambiguous (every string quoted and escaped) and computed in C.
    """
    pairs = [(turn["patient"], turn["doctor"]) for turn in turns]
    return hashlib.sha256(repr(pairs).encode()).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the sorted ids joined by newlines: an adapter's ``conversations_sha256``."""
    return sha256_bytes("\n".join(sorted(ids)).encode())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """Digest of a directory: relative paths and file digests, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()
