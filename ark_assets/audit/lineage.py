"""The lineage walk: the materializations of every upstream asset that went into an artifact.

The walk starts at the artifact's materialization and finds, for every upstream asset,
the materializations *in effect when its child was built*:

- an unpartitioned parent: the exact event Dagster recorded as the child's input (the tag
  ``dagster/input_event_pointer/<parent>`` holds its storage id); the latest one before the child
  when the tag is missing;
- a partitioned parent (one partition per dialogue batch): the latest materialization of each
  batch the child read, before the child was built — the child's own partition, an adapter's
  lineage batches (``lineage.json``), or else every batch materialized by then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ark_assets.audit.events import EventLog, Materialization

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
