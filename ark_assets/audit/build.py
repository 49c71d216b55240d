"""The audit of one artifact (``build_audit``) or of several (``audit_collection``), assembled
from the sections; ``write_report`` writes a document and its markdown."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.audit.artifact import artifact_facts, checks, upstream
from ark_assets.audit.conversations import conversation_keys
from ark_assets.audit.events import EventLog
from ark_assets.audit.lineage import Used, walk
from ark_assets.audit.privacy import deletion, phi
from ark_assets.audit.provenance import base_model, knowledge_base, teacher
from ark_assets.audit.reproduce import reproduce
from ark_assets.audit.sources import adapter_batches, held_batches, source_files
from ark_assets.audit.stores import AuditStores, default_manifest_path
from ark_assets.audit.targets import adapter_files, resolve
from ark_assets.lib import audit_report as report
from ark_assets.lib.artifacts import atomic_write_bytes
from ark_assets.lib.forget import Identifiers


def build_audit(
    target: str,
    instance: dg.DagsterInstance,
    definitions: dg.Definitions,
    resources: Mapping[str, Any] | AuditStores,
    manifest: report.SourcesManifest | None = None,
) -> dict[str, Any]:
    """The audit of ``target`` (an asset key, a file artifact's path or an adapter directory).

    ``resources`` needs ``warehouse`` and, for landing times, ``inbox`` and ``kb_inbox``.
    Raises AuditError when the target names nothing known.
    """
    stores = resources if isinstance(resources, AuditStores) else AuditStores.of(resources)
    manifest = manifest or report.load_manifest(default_manifest_path())
    graph = definitions.get_repository_def().asset_graph
    log = EventLog(instance)
    resolved = resolve(target, graph, log)
    card, lineage = adapter_files(resolved.adapter_dir)
    recorded_batches = adapter_batches(resolved.record, lineage)
    used = Used({}, {})
    if resolved.record is not None:
        used = walk(graph, log, resolved.record, recorded_batches)
    everything = used.everything()
    artifact = artifact_facts(resolved, graph, card, lineage)
    batches = held_batches(graph, resolved, used, recorded_batches)
    sources = source_files(everything, batches, stores, manifest)
    conversations, digests = conversation_keys(
        resolved, stores, batches, lineage, artifact.get("matches_disk")
    )
    holdings = Identifiers(
        conversation_ids=frozenset(conversations.get("ids", [])),
        dialogue_sha256s=digests,
        batches=frozenset(batches),
        file_sha256s=frozenset(f["sha256"] for f in sources["files"]),
    )
    built_at = resolved.record.built_at if resolved.record else None
    audit: dict[str, Any] = {
        "schema": report.SCHEMA,
        "target": {
            "query": target,
            "resolved_as": resolved.resolved_as,
            "asset": resolved.asset.to_user_string() if resolved.asset else None,
        },
        "generated_at": datetime.now(UTC).isoformat(),
        "artifact": artifact,
        "upstream": upstream(graph, resolved, used),
        "checks": checks(graph, instance, used) if resolved.record else [],
        "sources": sources,
        "conversations": conversations,
        "teacher": teacher(everything),
        "knowledge_base": knowledge_base(everything),
        "base_model": base_model(everything, resolved.record, card),
        "phi": phi(stores, batches, everything),
        "deletion": deletion(stores, built_at, holdings),
    }
    audit["reproduce"] = reproduce(instance, used, card, audit)
    audit["findings"] = report.findings(audit)
    return audit


def audit_collection(
    targets: Sequence[str],
    instance: dg.DagsterInstance,
    definitions: dg.Definitions,
    resources: Mapping[str, Any] | AuditStores,
) -> dict[str, Any]:
    """The audits of several artifacts in one document (the ``compliance_audit`` asset)."""
    manifest = report.load_manifest(default_manifest_path())
    return {
        "schema": report.SCHEMA,
        "generated_at": datetime.now(UTC).isoformat(),
        "artifacts": {
            key: build_audit(key, instance, definitions, resources, manifest) for key in targets
        },
    }


def write_report(
    folder: Path, stem: str, document: Mapping[str, Any], markdown: str
) -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` in ``folder``, each written atomically."""
    json_path, markdown_path = folder / f"{stem}.json", folder / f"{stem}.md"
    text = json.dumps(document, indent=1, ensure_ascii=False, default=str)
    atomic_write_bytes(json_path, text.encode())
    atomic_write_bytes(markdown_path, markdown.encode())
    return json_path, markdown_path
