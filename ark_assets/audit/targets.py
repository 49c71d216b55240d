"""What ``ark audit TARGET`` names — an asset key, a file artifact's path or an adapter directory —
resolved to its materialization; and the adapter's training card and lineage file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.audit.events import EventLog, Materialization
from ark_assets.audit.lineage import AssetGraph
from ark_assets.lib.training.runs import LINEAGE_FILE

TRAINING_CARD = "training_card.json"
# Metadata keys under which assets record the file or directory they wrote.
_PATH_KEYS = ("path", "adapter_path")
# How many past materializations of each asset a path target is looked up in.
_PATH_HISTORY = 50


class AuditError(ValueError):
    """The target names nothing this code location and instance know about."""


@dataclass(frozen=True)
class Target:
    query: str
    resolved_as: str
    asset: dg.AssetKey | None
    record: Materialization | None
    superseded: bool = False
    adapter_dir: Path | None = None


def resolve(target: str, graph: AssetGraph, log: EventLog) -> Target:
    keys = {key.to_user_string(): key for key in graph.get_all_asset_keys()}
    if target in keys:
        record = log.latest(keys[target])
        return Target(target, "asset key", keys[target], record, adapter_dir=_adapter_dir(record))
    path = Path(target).expanduser()
    if path.exists():
        path = path.resolve()
        found = _find_by_path(path, graph, log)
        if found is not None:
            record, superseded = found
            return Target(
                target, "artifact path", record.asset, record, superseded, _adapter_dir(record)
            )
        card_dir = next((p for p in (path, path.parent) if (p / TRAINING_CARD).is_file()), None)
        if card_dir is not None:
            return Target(target, "adapter directory", None, None, adapter_dir=card_dir)
    raise AuditError(
        f"ark audit: {target!r} is not an asset key of this code location, nor a file artifact "
        "or adapter directory that an existing materialization recorded. Valid targets: an "
        f"asset key ({', '.join(sorted(keys))}); the path of a file artifact (e.g. "
        f"data/artifacts/exports/tagged.pkl); an adapter directory (one holding {TRAINING_CARD})."
    )


def _find_by_path(
    path: Path, graph: AssetGraph, log: EventLog
) -> tuple[Materialization, bool] | None:
    """The newest materialization whose recorded path is ``path`` (or holds it); superseded?"""
    containing: tuple[Materialization, bool] | None = None
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        for index, record in enumerate(log.history(key, _PATH_HISTORY)):
            for recorded in recorded_paths(record):
                if recorded == path:
                    return record, index > 0
                if containing is None and recorded.is_dir() and path.is_relative_to(recorded):
                    containing = (record, index > 0)
    return containing


def recorded_paths(record: Materialization) -> list[Path]:
    values = (record.metadata.get(key) for key in _PATH_KEYS)
    return [Path(value).resolve() for value in values if isinstance(value, str) and value]


def _adapter_dir(record: Materialization | None) -> Path | None:
    value = record.metadata.get("adapter_path") if record else None
    return Path(value) if isinstance(value, str) and value else None


def adapter_files(adapter_dir: Path | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The adapter's training card and lineage (or the run directory's copy of the lineage)."""
    if adapter_dir is None or not (adapter_dir / TRAINING_CARD).is_file():
        return {}, None
    card = json.loads((adapter_dir / TRAINING_CARD).read_text())
    candidates = [adapter_dir / LINEAGE_FILE]
    recorded = (card.get("settings") or {}).get("lineage_path")
    if recorded:
        candidates.append(Path(recorded))
    lineage_path = next((p for p in candidates if p.is_file()), None)
    lineage = json.loads(lineage_path.read_text()) if lineage_path else None
    return card, lineage
