"""Where an audit's facts come from: materialization records read from Dagster's instance
(``Materialization``, ``EventLog``), the lineage walk from an artifact to the exact upstream
materializations it was built from, the targets ``ark audit`` names, and the stores besides the
instance (warehouse, landing areas, the sources manifest).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.defs.knowledge.resources import KbInbox
from ark_assets.defs.resources import ArtifactStore, DialogueInbox, Warehouse
from ark_assets.lib.artifacts import package_data
from ark_assets.lib.compliance import audit_report as report
from ark_assets.lib.compliance.targets import InvalidTarget, checked_target, resolved_inside
from ark_assets.lib.training.runs import LINEAGE_FILE

# --- events ------------------------------------------------------------------------------------

CODE_VERSION = "dagster/code_version"
DATA_VERSION = "dagster/data_version"


@dataclass(frozen=True)
class Materialization:
    """One materialization event, reduced to what an audit needs."""

    asset: dg.AssetKey
    partition: str | None
    storage_id: int
    run_id: str
    timestamp: float
    tags: Mapping[str, str]
    metadata: Mapping[str, Any]

    @classmethod
    def of(cls, record: dg.EventLogRecord) -> Materialization:
        event = record.asset_materialization
        if event is None:
            raise ValueError(f"event {record.storage_id} is not a materialization")
        return cls(
            asset=event.asset_key,
            partition=event.partition,
            storage_id=record.storage_id,
            run_id=record.run_id,
            timestamp=record.timestamp,
            tags=dict(event.tags or {}),
            metadata={key: _plain(value) for key, value in event.metadata.items()},
        )

    @property
    def built_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)

    @property
    def row_count(self) -> int | None:
        count = self.metadata.get("dagster/row_count")
        return count if isinstance(count, int) else None

    def summary(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "run_id": self.run_id,
            "storage_id": self.storage_id,
            "materialized_at": report.iso_time(self.timestamp),
            "code_version": self.tags.get(CODE_VERSION),
            "data_version": self.tags.get(DATA_VERSION),
        }


def _plain(value: dg.MetadataValue) -> Any:
    """The JSON value of a metadata entry (None for tables, schemas and other records)."""
    raw = value.value
    return raw if _is_json(raw) else None


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


class EventLog:
    """Materialization lookups, cached: one audit asks for the same events many times."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _fetch(self, records_filter: dg.AssetRecordsFilter, limit: int) -> list[Materialization]:
        result = self.instance.fetch_materializations(records_filter, limit=limit)
        return [Materialization.of(record) for record in result.records]

    def by_storage_id(self, key: dg.AssetKey, storage_id: int) -> Materialization | None:
        cache_key = ("id", key, storage_id)
        if cache_key not in self._cache:
            found = self._fetch(dg.AssetRecordsFilter(asset_key=key, storage_ids=[storage_id]), 1)
            self._cache[cache_key] = found[0] if found else None
        return self._cache[cache_key]

    def latest(
        self, key: dg.AssetKey, partition: str | None = None, before: float | None = None
    ) -> Materialization | None:
        cache_key = ("latest", key, partition, before)
        if cache_key not in self._cache:
            found = self._fetch(
                dg.AssetRecordsFilter(
                    asset_key=key,
                    asset_partitions=[partition] if partition is not None else None,
                    before_timestamp=before,
                ),
                1,
            )
            self._cache[cache_key] = found[0] if found else None
        return self._cache[cache_key]

    def by_partition(self, key: dg.AssetKey, before: float) -> dict[str, Materialization]:
        """The latest materialization of every partition of ``key`` before ``before``."""
        cache_key = ("partitions", key, before)
        if cache_key not in self._cache:
            latest: dict[str, Materialization] = {}
            cursor = None
            while True:
                page = self.instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, before_timestamp=before),
                    limit=1000,
                    cursor=cursor,
                )
                for record in page.records:
                    found = Materialization.of(record)
                    if found.partition is not None:
                        latest.setdefault(found.partition, found)
                if not page.has_more:
                    break
                cursor = page.cursor
            self._cache[cache_key] = latest
        return self._cache[cache_key]

    def history(self, key: dg.AssetKey, limit: int) -> list[Materialization]:
        return self._fetch(dg.AssetRecordsFilter(asset_key=key), limit)


# --- lineage -----------------------------------------------------------------------------------

_POINTER = "dagster/input_event_pointer/"
# Dagster's BaseAssetGraph (``Definitions.get_repository_def().asset_graph``) is not exported.
AssetGraph = Any


@dataclass
class Used:
    """The materializations of each upstream asset that went into the artifact."""

    records: dict[dg.AssetKey, dict[int, Materialization]]
    missing: dict[dg.AssetKey, set[str]]

    def of(self, key: dg.AssetKey) -> list[Materialization]:
        found = self.records.get(key, {}).values()
        return sorted(found, key=lambda m: (m.partition or "", m.timestamp))

    def everything(self) -> list[Materialization]:
        return [m for key in self.records for m in self.of(key)]


def walk(
    graph: AssetGraph, log: EventLog, target: Materialization, batches: Sequence[str] | None
) -> Used:
    closure = graph.get_ancestor_asset_keys(target.asset, include_self=True)
    used = Used({target.asset: {target.storage_id: target}}, {})
    for key in reversed(graph.toposorted_asset_keys):
        if key not in closure:
            continue
        for record in list(used.records.get(key, {}).values()):
            for parent in graph.get(key).parent_keys:
                wanted = batches if key == target.asset else None
                for found in _inputs(graph, log, record, parent, wanted, used):
                    used.records.setdefault(parent, {})[found.storage_id] = found
    return used


def _inputs(
    graph: AssetGraph,
    log: EventLog,
    record: Materialization,
    parent: dg.AssetKey,
    batches: Sequence[str] | None,
    used: Used,
) -> list[Materialization]:
    """The materializations of ``parent`` that ``record`` was built from."""
    node, child = graph.get(parent), graph.get(record.asset)
    if node.is_partitioned:
        if record.partition is not None and node.partitions_def == child.partitions_def:
            wanted: Sequence[str] | None = [record.partition]
        else:
            wanted = batches
        if wanted is None:
            return list(log.by_partition(parent, before=record.timestamp).values())
        found = []
        for partition in wanted:
            materialization = log.latest(parent, partition, before=record.timestamp)
            if materialization is None:
                used.missing.setdefault(parent, set()).add(partition)
            else:
                found.append(materialization)
        return found
    pointer = record.tags.get(_POINTER + parent.to_user_string(), "")
    exact = log.by_storage_id(parent, int(pointer)) if pointer.isdigit() else None
    materialization = exact or log.latest(parent, before=record.timestamp)
    return [materialization] if materialization else []


# --- targets -----------------------------------------------------------------------------------

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
    try:
        checked_target(target, "ark audit")
    except InvalidTarget as err:
        raise AuditError(str(err)) from err
    keys = {key.to_user_string(): key for key in graph.get_all_asset_keys()}
    if target in keys:
        record = log.latest(keys[target])
        return Target(target, "asset key", keys[target], record, adapter_dir=_adapter_dir(record))
    path = Path(target).expanduser()
    if _exists(path):
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


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a component longer than the file system allows, a symlink loop
        return False


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


def adapter_files(
    adapter_dir: Path | None, artifacts_root: Path | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """The adapter's training card, its lineage (the copy beside the card, else the run
    directory's), and the lineage path the card names when it was not read because it lies
    outside the artifact store: a card is data, and never makes the audit read elsewhere."""
    if adapter_dir is None or not (adapter_dir / TRAINING_CARD).is_file():
        return {}, None, None
    card = _json_file(adapter_dir / TRAINING_CARD)
    if not isinstance(card, dict):
        raise AuditError(f"ark audit: {adapter_dir / TRAINING_CARD} is not a training card")
    settings = card.get("settings")
    recorded = settings.get("lineage_path") if isinstance(settings, dict) else None
    refused = None
    candidates = [adapter_dir / LINEAGE_FILE]
    if isinstance(recorded, str) and recorded:
        inside = resolved_inside(Path(recorded), [artifacts_root] if artifacts_root else [])
        if inside is None:
            refused = recorded
        else:
            candidates.append(inside)
    lineage_path = next((p for p in candidates if p.is_file()), None)
    lineage = _json_file(lineage_path) if lineage_path else None
    if lineage is not None and not isinstance(lineage, dict):
        raise AuditError(f"ark audit: {lineage_path} is not a lineage file")
    return card, lineage, refused


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise AuditError(f"ark audit: cannot read {path}: {err}") from err


# --- stores ------------------------------------------------------------------------------------

MANIFEST_ENV = "ARK_SOURCES_MANIFEST"


@dataclass(frozen=True)
class AuditStores:
    """What an audit reads besides the instance: the warehouse, the landing areas and the
    artifact store."""

    warehouse: Warehouse
    inbox: DialogueInbox | None = None
    kb_inbox: KbInbox | None = None
    artifacts: ArtifactStore | None = None  # where a training card's lineage_path may point

    @classmethod
    def of(cls, resources: Mapping[str, Any]) -> AuditStores:
        return cls(
            resources["warehouse"],
            resources.get("inbox"),
            resources.get("kb_inbox"),
            resources.get("artifacts"),
        )

    @property
    def artifacts_root(self) -> Path | None:
        return Path(self.artifacts.root) if self.artifacts else None


def default_manifest_path() -> Path:
    """``$ARK_SOURCES_MANIFEST``, or the manifest of the bundled samples."""
    configured = os.environ.get(MANIFEST_ENV)
    if configured:
        return Path(configured)
    return package_data("samples", "sources.yaml")
