"""Materialization records read from Dagster's instance: one event reduced to what an audit needs
(``Materialization``), and the cached event-log lookups the lineage walk makes (``EventLog``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ark_assets.lib import audit_report as report

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
