"""The knowledge-base inbox: the files it holds now, landed, and a fingerprint of that set.

Unlike dialogue batches, the knowledge base is the *current* content of its inbox: dropping a
file adds its pairs, replacing it replaces them, removing it removes them from the index. Each
version of a file is still landed (content-addressed, as in ``lib.ingest.inbox``) so the exact bytes
behind every document stay available to the audit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from ark_assets.lib.ingest.inbox import ArrivedFile, ScanCache, land, scan
from ark_assets.lib.knowledge.records import SourceFile


def current_files(inbox: Path, cache: ScanCache | None = None) -> list[ArrivedFile]:
    """Complete regular files in the inbox (any extension: unsupported ones are quarantined
    later). Symbolic links are never read, as in the dialogue inbox (``lib.ingest.inbox``)."""
    return scan(inbox, cache or ScanCache())


def fingerprint(files: Sequence[ArrivedFile]) -> str:
    """sha256 over the sorted ``name:sha256`` lines: changes when any file is added, changed or
    removed, and only then."""
    lines = sorted(f"{f.path.name}:{f.sha256}" for f in files)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def land_all(files: Sequence[ArrivedFile], inbox: Path, landing: Path) -> list[SourceFile]:
    """Read every file through its landed copy (landing it on first sight)."""
    landed = []
    for arrived in files:
        name, data, digest = land(arrived.key, inbox, landing)
        landed.append(SourceFile(name, data, digest))
    return landed
