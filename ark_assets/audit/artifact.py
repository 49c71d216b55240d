"""The ``artifact``, ``upstream`` and ``checks`` sections: the audited materialization (and whether
its file still matches its recorded digest), the upstream materializations it was built from, and
the verdicts of their asset checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from ark_assets.audit.events import CODE_VERSION, DATA_VERSION
from ark_assets.audit.lineage import AssetGraph, Used
from ark_assets.audit.targets import Target, recorded_paths
from ark_assets.lib import audit_report as report
from ark_assets.lib.hashing import sha256_file, sha256_tree

_LONGEST_METADATA_TEXT = 300


def artifact_facts(
    target: Target, graph: AssetGraph, card: Mapping[str, Any], lineage: Mapping[str, Any] | None
) -> dict[str, Any]:
    record = target.record
    if record is None:
        return {
            "asset": target.asset.to_user_string() if target.asset else None,
            "materialized": False,
            "path": str(target.adapter_dir) if target.adapter_dir else None,
            "training_card": bool(card),
            "lineage_file": lineage is not None,
        }
    node = graph.get(record.asset)
    path = next((p for p in recorded_paths(record)), None)
    recorded_sha = record.metadata.get("adapter_sha256") or record.metadata.get("sha256")
    on_disk = None
    if path is not None and isinstance(recorded_sha, str):
        if path.is_dir():
            on_disk = sha256_tree(path)
        elif path.is_file():
            on_disk = sha256_file(path)
    return {
        "asset": record.asset.to_user_string(),
        "group": node.group_name,
        "materialized": True,
        "superseded": target.superseded,
        "partition": record.partition,
        "run_id": record.run_id,
        "storage_id": record.storage_id,
        "materialized_at": report.iso_time(record.timestamp),
        "code_version": record.tags.get(CODE_VERSION),
        "code_version_current": node.code_version,
        "data_version": record.tags.get(DATA_VERSION),
        "path": str(path) if path else None,
        "sha256": recorded_sha,
        "sha256_on_disk": on_disk,
        "matches_disk": None if on_disk is None else on_disk == recorded_sha,
        "metadata": {
            key: value
            for key, value in record.metadata.items()
            if isinstance(value, bool | int | float)
            or (isinstance(value, str) and len(value) <= _LONGEST_METADATA_TEXT)
        },
    }


def upstream(graph: AssetGraph, target: Target, used: Used) -> list[dict[str, Any]]:
    if target.asset is None:
        return []
    entries = []
    ancestors = graph.get_ancestor_asset_keys(target.asset)
    for key in (k for k in graph.toposorted_asset_keys if k in ancestors):
        node = graph.get(key)
        records = used.of(key)
        recorded = sorted({m.tags[CODE_VERSION] for m in records if CODE_VERSION in m.tags})
        entries.append(
            {
                "asset": key.to_user_string(),
                "group": node.group_name,
                "partitioned": node.is_partitioned,
                "materializable": node.is_materializable,
                "code_version": node.code_version,
                "code_versions_recorded": recorded,
                "code_changed_since": any(v != node.code_version for v in recorded),
                "materializations": [m.summary() for m in records],
                "missing_partitions": sorted(used.missing.get(key, ())),
            }
        )
    return entries


def checks(graph: AssetGraph, instance: dg.DagsterInstance, used: Used) -> list[dict[str, Any]]:
    """Every check of every asset in the lineage, judged on the materializations used."""
    checks = []
    for key in sorted(used.records, key=lambda k: k.to_user_string()):
        storage_ids = {m.storage_id for m in used.of(key)}
        for check_key in sorted(graph.get(key).check_keys, key=lambda c: c.name):
            history = instance.event_log_storage.get_asset_check_execution_history(
                check_key, limit=max(100, 4 * len(storage_ids))
            )
            verdicts: dict[int, bool] = {}
            for execution in history:  # newest first: a re-run check's latest verdict wins
                evaluation = execution.evaluation
                if isinstance(evaluation, dg.AssetCheckEvaluation) and (
                    target := evaluation.target_materialization_data
                ):
                    verdicts.setdefault(target.storage_id, evaluation.passed)
            passed = sum(verdicts.get(i) is True for i in storage_ids)
            failed = sum(verdicts.get(i) is False for i in storage_ids)
            missing = len(storage_ids) - passed - failed
            status = (
                "failed"
                if failed
                else "passed"
                if passed and not missing
                else "partly evaluated"
                if passed
                else "not evaluated"
            )
            checks.append(
                {
                    "asset": key.to_user_string(),
                    "check": check_key.name,
                    "blocking": bool(graph.get(check_key).blocking),
                    "status": status,
                    "passed": passed,
                    "failed": failed,
                    "not_evaluated": missing,
                }
            )
    return checks
