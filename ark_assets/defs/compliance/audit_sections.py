"""The sections of an audit, each computed from the lineage walk: ``artifact``, ``upstream`` and
``checks``; ``sources``; ``conversations``; ``teacher``, ``knowledge_base`` and ``base_model``;
``phi`` and ``deletion``; ``reproduce``. Only identifiers are collected (keys, run ids, hashes,
file names, conversation keys): no dialogue text, no PHI value.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.defs.compliance.audit_lineage import (
    CODE_VERSION,
    DATA_VERSION,
    AssetGraph,
    AuditStores,
    Materialization,
    Target,
    Used,
    recorded_paths,
)
from ark_assets.lib.compliance import audit_report as report
from ark_assets.lib.compliance.provenance import BUILT_WITH
from ark_assets.lib.compliance.tombstones import Identifiers, read_requests
from ark_assets.lib.hashing import dialogue_sha256, ids_digest, sha256_file, sha256_tree
from ark_assets.lib.ingest.inbox import batch_key
from ark_assets.lib.warehouse import table_exists

# --- artifact ----------------------------------------------------------------------------------

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


# --- sources -----------------------------------------------------------------------------------


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


# --- conversations -----------------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain data only (tagged.pkl holds dicts, lists and strings): never runs code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: tagged.pkl holds plain data only")


def conversation_keys(
    target: Target,
    stores: AuditStores,
    batches: Sequence[str],
    lineage: Mapping[str, Any] | None,
    matches_disk: bool | None,
) -> tuple[dict[str, Any], frozenset[str]]:
    """The conversation keys the artifact was built from, and their dialogue digests if known."""
    if lineage is not None:
        ids = sorted(lineage.get("conversation_ids", []))
        recorded = lineage.get("conversations_sha256")
        return _keys(ids, batches, "lineage.json of the adapter", recorded), frozenset()
    record = target.record
    if record is None:
        return {}, frozenset()
    path = next(iter(recorded_paths(record)), None)
    if path is not None and path.suffix == ".pkl" and path.is_file() and matches_disk:
        with path.open("rb") as handle:
            entries = _PlainUnpickler(handle).load()
        digests = frozenset(dialogue_sha256(turns) for turns in entries.values())
        return _keys(sorted(entries), batches, f"keys of {path.name}", None), digests
    table = record.asset.path[-1]
    with stores.warehouse.connect() as conn:
        schema = stores.warehouse.schema_name
        if not table_exists(conn, schema, table):
            return {}, frozenset()
        columns = {
            row[0]
            for row in conn.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [schema, table],
            ).fetchall()
        }
        if "conversation_id" not in columns:
            return {}, frozenset()
        where, params = ("", [])
        if "batch" in columns and batches:
            where, params = f" where batch in ({', '.join('?' * len(batches))})", list(batches)
        select = (
            "conversation_id, dialogue_sha256"
            if "dialogue_sha256" in columns
            else ("conversation_id, null")
        )
        rows = conn.execute(f"select distinct {select} from {schema}.{table}{where}", params)
        pairs = rows.fetchall()
    ids = sorted({cid for cid, _ in pairs})
    digests = frozenset(digest for _, digest in pairs if digest)
    return _keys(ids, batches, f"warehouse table {schema}.{table} (current rows)", None), digests


def _keys(
    ids: list[str], batches: Sequence[str], origin: str, recorded: str | None
) -> dict[str, Any]:
    digest = ids_digest(ids)
    keys: dict[str, Any] = {
        "origin": origin,
        "count": len(ids),
        "sha256": digest,
        "batches": list(batches),
        "ids": ids,
    }
    if recorded:
        keys["recorded_sha256"] = recorded
        keys["consistent"] = recorded == digest
    return keys


# --- provenance --------------------------------------------------------------------------------


def _distinct(rows: Iterable[dict[str, Any]], assets_of: Sequence[str]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for row, asset in zip(rows, assets_of, strict=True):
        entry = merged.setdefault(json.dumps(row, sort_keys=True), {**row, "assets": []})
        if asset not in entry["assets"]:
            entry["assets"].append(asset)
    return list(merged.values())


def teacher(everything: Sequence[Materialization]) -> list[dict[str, Any]]:
    found = [m for m in everything if "teacher_backend" in m.metadata]
    rows = [
        {
            "backend": m.metadata.get("teacher_backend"),
            "model": m.metadata.get("teacher_model"),
            "note": m.metadata.get("teacher_note"),
        }
        for m in found
    ]
    return _distinct(rows, [m.asset.to_user_string() for m in found])


def knowledge_base(everything: Sequence[Materialization]) -> dict[str, Any]:
    snapshots = [
        {
            "asset": m.asset.to_user_string(),
            "collection": m.metadata.get("collection"),
            "embedder": m.metadata.get("embedder"),
            "dimension": m.metadata.get("dimension"),
            "documents": m.row_count,
            "data_version": m.tags.get(DATA_VERSION),
            "materialized_at": report.iso_time(m.timestamp),
            "path": m.metadata.get("path"),
        }
        for m in everything
        if "collection" in m.metadata and "embedder" in m.metadata
    ]
    queried = [m for m in everything if "kb_collection" in m.metadata]
    rows = [
        {
            "kb": m.metadata.get("kb"),
            "collection": m.metadata.get("kb_collection"),
            "embedder": m.metadata.get("kb_embedder"),
            "documents": m.metadata.get("kb_documents"),
            "data_version": m.metadata.get("kb_data_version"),
        }
        for m in queried
    ]
    if not snapshots and not queried:
        return {}
    return {
        "snapshots": snapshots,
        "queried": _distinct(rows, [m.asset.to_user_string() for m in queried]),
    }


def base_model(
    everything: Sequence[Materialization], record: Materialization | None, card: Mapping[str, Any]
) -> dict[str, Any]:
    base = next(
        (m for m in everything if {"architecture", "sha256", "model_id"} <= set(m.metadata)), None
    )
    found: dict[str, Any] = {}
    if base is not None:
        found = {
            key: base.metadata.get(key)
            for key in ("model_id", "sha256", "source_sha256", "architecture", "parameters")
        }
        found["template"] = base.metadata.get("template")
        found["materialized_at"] = report.iso_time(base.timestamp)
    claims = dict(card.get("provenance") or {})
    if record is not None:
        claims.update(
            {
                k: record.metadata[k]
                for k in ("base_model", "base_model_sha256")
                if k in record.metadata
            }
        )
    if claims.get("base_model_sha256"):
        found["trained_on"] = claims.get("base_model")
        found["trained_on_sha256"] = claims["base_model_sha256"]
        if base is not None:
            found["sha256_consistent"] = claims["base_model_sha256"] == found["sha256"]
    return found


# --- privacy -----------------------------------------------------------------------------------

PHI_FINDINGS = "phi_findings"


def phi(
    stores: AuditStores, batches: Sequence[str], everything: Sequence[Materialization]
) -> dict[str, Any]:
    at_build: dict[str, dict[str, int]] = {}
    for m in everything:
        counts = m.metadata.get("phi_by_type")
        if isinstance(counts, dict) and m.asset.to_user_string() != PHI_FINDINGS:
            totals = at_build.setdefault(m.asset.to_user_string(), {})
            for kind, count in counts.items():
                totals[kind] = totals.get(kind, 0) + int(count)
    phi: dict[str, Any] = {"batches": list(batches), "replaced_at_build": at_build}
    if not batches:
        return {**phi, "by_type": None, "note": "no dialogue batches in this artifact"}
    placeholders = ", ".join("?" * len(batches))
    counts = stores.warehouse.read(
        PHI_FINDINGS,
        "select type, count(*) as n from {table} "
        f"where batch in ({placeholders}) group by type order by type",
        list(batches),
    )
    if counts is None:
        return {**phi, "by_type": None, "note": f"no {PHI_FINDINGS} table in the warehouse yet"}
    by_type = {str(kind): int(n) for kind, n in counts.iter_rows()}
    return {**phi, "by_type": by_type, "total": sum(by_type.values())}


def deletion(
    stores: AuditStores, built_at: datetime | None, holdings: Identifiers
) -> dict[str, Any]:
    with stores.warehouse.connect() as conn:
        requests = read_requests(conn, stores.warehouse.schema_name)
    return report.taint(built_at, holdings, requests)


# --- reproduce ---------------------------------------------------------------------------------


def reproduce(
    instance: dg.DagsterInstance,
    used: Used,
    card: Mapping[str, Any],
    audit: Mapping[str, Any],
    record: Materialization | None = None,
) -> dict[str, Any]:
    """What a rebuild needs: the inputs by content digest, each run's configuration, the code
    versions, the training settings (seed included) and the environment it was built with."""
    records = used.everything()
    runs: dict[str, dict[str, Any]] = {}
    for m in records:
        entry = runs.get(m.run_id)
        if entry is None:
            run = instance.get_run_by_id(m.run_id)
            entry = runs[m.run_id] = {
                "job": run.job_name if run else None,
                "run_config": report.redact(dict(run.run_config)) if run else None,
                "tags": report.redact(dict(run.tags)) if run else None,
                "assets": [],
            }
        asset = m.asset.to_user_string()
        if asset not in entry["assets"]:
            entry["assets"].append(asset)
    base, kb = audit["base_model"], audit["knowledge_base"]
    reproduce: dict[str, Any] = {
        "inputs": {
            "source_files": [
                {"name": f["name"], "sha256": f["sha256"], "batch": f["batch"]}
                for f in audit["sources"]["files"]
            ],
            "batches": audit["conversations"].get("batches"),
            "conversations_sha256": audit["conversations"].get("sha256"),
            "base_model": {"id": base.get("model_id"), "sha256": base.get("sha256")}
            if base
            else None,
            "kb_data_versions": sorted({s["data_version"] for s in kb.get("snapshots", [])}),
            "teacher_caches": sorted(
                {
                    str(m.metadata["teacher_cache"])
                    for m in records
                    if m.metadata.get("teacher_cache")
                }
            ),
        },
        "code_versions": {
            asset: ", ".join(sorted(versions))
            for asset, versions in _code_versions(records).items()
        },
        "runs": runs,
    }
    if card:
        reproduce["training"] = {
            "settings": card.get("settings"),
            "provenance": card.get("provenance"),
            "base_model_path": card.get("base_model_path"),
            "global_step": card.get("global_step"),
        }
    reproduce["built_with"], reproduce["built_with_from"] = built_with(record, card)
    return reproduce


def _code_versions(records: Sequence[Materialization]) -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for m in records:
        versions.setdefault(m.asset.to_user_string(), set()).add(m.tags.get(CODE_VERSION, "?"))
    return versions


def built_with(
    record: Materialization | None, card: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """The git commit and package versions recorded when the artifact was built, and where they
    were recorded; (None, None) for an artifact built before they were recorded. An adapter's
    card wins: the trainer process that wrote it (a GPU pod's image, in production) built it."""
    if isinstance(card.get(BUILT_WITH), dict):
        return dict(card[BUILT_WITH]), "training card"
    recorded = record.metadata.get(BUILT_WITH) if record else None
    if isinstance(recorded, dict):
        return dict(recorded), "materialization metadata"
    return None, None
