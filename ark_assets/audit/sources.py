"""The ``sources`` section: the dialogue batches an artifact holds, and the files behind it
(dialogue files, knowledge-base documents) with their landing times and manifest entries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ark_assets.audit.events import Materialization
from ark_assets.audit.lineage import AssetGraph, Used
from ark_assets.audit.stores import AuditStores
from ark_assets.audit.targets import Target
from ark_assets.lib import audit_report as report
from ark_assets.lib.hashing import sha256_file
from ark_assets.lib.inbox import batch_key


def held_batches(
    graph: AssetGraph, target: Target, used: Used, recorded: Sequence[str] | None
) -> list[str]:
    """The dialogue batches whose data the artifact holds."""
    if recorded is not None:
        return sorted(recorded)
    record = target.record
    if record is None:
        return []
    if record.partition is not None:
        return [record.partition]
    held: set[str] = set()
    for parent in graph.get(record.asset).parent_keys:
        for m in used.of(parent):
            # An empty partition (a forgotten file, a batch with nothing accepted) holds nothing.
            if m.partition is not None and m.row_count != 0:
                held.add(m.partition)
    return sorted(held)


def adapter_batches(
    record: Materialization | None, lineage: Mapping[str, Any] | None
) -> list[str] | None:
    """The batches an adapter says it was trained on (lineage.json, else its metadata)."""
    if lineage is not None:
        return list(lineage.get("batches", []))
    batches = record.metadata.get("record_batches") if record else None
    return [str(b) for b in batches] if isinstance(batches, list) else None


def source_files(
    everything: Sequence[Materialization],
    batches: Sequence[str],
    stores: AuditStores,
    manifest: report.SourcesManifest,
) -> dict[str, Any]:
    files: dict[tuple[str, str, str], dict[str, Any]] = {}
    for m in everything:
        name, digest = m.metadata.get("source_file"), m.metadata.get("file_sha256")
        if isinstance(name, str) and isinstance(digest, str) and m.partition in batches:
            files.setdefault(
                ("dialogue", name, digest),
                {
                    "batch": m.partition,
                    "landed_at": _dialogue_landing(stores, m.partition, name),
                    "ingested_at": report.iso_time(m.timestamp),
                },
            )
        kb_files = m.metadata.get("files")
        if isinstance(kb_files, dict):
            for kb_name, kb_digest in kb_files.items():
                files.setdefault(
                    ("knowledge", kb_name, str(kb_digest)),
                    {
                        "batch": None,
                        "landed_at": _kb_landing(stores, kb_name, str(kb_digest)),
                        "ingested_at": report.iso_time(m.timestamp),
                    },
                )
    covered = {facts["batch"] for (kind, _, _), facts in files.items() if kind == "dialogue"}
    for batch in (b for b in batches if b not in covered):
        # No ingest record (an adapter audited from its card alone): the landed copy.
        landed = _landed_copy(stores, batch)
        if landed is not None:
            files[("dialogue", landed.name, sha256_file(landed))] = {
                "batch": batch,
                "landed_at": _mtime(landed),
                "ingested_at": None,
            }
    rows = [
        {"kind": kind, "name": name, "sha256": digest, **facts, **manifest.describe(name)}
        for (kind, name, digest), facts in sorted(files.items())
    ]
    return {
        "manifest": manifest.path,
        "files": rows,
        "unlisted": sorted({row["name"] for row in rows if not row["listed"]}),
    }


def _landed_copy(stores: AuditStores, batch: str) -> Path | None:
    if stores.inbox is None:
        return None
    folder = Path(stores.inbox.landing_path, batch)
    landed = sorted(folder.glob("*")) if folder.is_dir() else []
    return landed[0] if landed else None


def _dialogue_landing(stores: AuditStores, batch: str | None, name: str) -> str | None:
    if stores.inbox is None or batch is None:
        return None
    return _mtime(Path(stores.inbox.landing_path, batch, name))


def _kb_landing(stores: AuditStores, name: str, digest: str) -> str | None:
    if stores.kb_inbox is None:
        return None
    return _mtime(Path(stores.kb_inbox.landing_path, batch_key(name, digest), name))


def _mtime(path: Path) -> str | None:
    return report.iso_time(path.stat().st_mtime) if path.is_file() else None
