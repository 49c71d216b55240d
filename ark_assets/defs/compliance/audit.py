"""The compliance audit: every shipped artifact traced back to its sources, licences and checks.

``build_audit`` assembles the audit of one artifact (an asset key, a file artifact's path or an
adapter directory) from the sections in ``audit_sections``, over the lineage walk in
``audit_lineage``; ``audit_collection`` audits several; ``write_report`` writes the JSON document
and its markdown. ``compliance_audit`` is the asset; ``ark audit`` (``cli/audit.py``) the command.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.defs.compliance.audit_lineage import (
    AuditStores,
    EventLog,
    Used,
    adapter_files,
    default_manifest_path,
    resolve,
    walk,
)
from ark_assets.defs.compliance.audit_sections import (
    adapter_batches,
    artifact_facts,
    base_model,
    checks,
    conversation_keys,
    deletion,
    held_batches,
    knowledge_base,
    phi,
    reproduce,
    source_files,
    teacher,
    upstream,
)
from ark_assets.defs.knowledge.resources import KbInbox
from ark_assets.defs.metadata import file_metadata
from ark_assets.defs.resources import ArtifactStore, DialogueInbox, Warehouse
from ark_assets.lib.artifacts import atomic_write_bytes
from ark_assets.lib.compliance import audit_report as report
from ark_assets.lib.compliance.audit_report import render_collection
from ark_assets.lib.compliance.tombstones import TABLE as DELETION_REQUESTS
from ark_assets.lib.compliance.tombstones import Identifiers

GROUP = "compliance"
# The file artifacts that leave the platform (exports, the index, adapters): each is audited.
AUDITED_ARTIFACTS = ("tagged_pkl", "kb_index", "sft_adapter", "dpo_adapter")


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
    card, lineage, lineage_refused = adapter_files(resolved.adapter_dir, stores.artifacts_root)
    recorded_batches = adapter_batches(resolved.record, lineage)
    used = Used({}, {})
    if resolved.record is not None:
        used = walk(graph, log, resolved.record, recorded_batches)
    everything = used.everything()
    artifact = artifact_facts(resolved, graph, card, lineage)
    artifact["lineage_path_refused"] = lineage_refused
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
    audit["reproduce"] = reproduce(instance, used, card, audit, resolved.record)
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


# Re-audit whenever an audited artifact is rebuilt or a deletion request is recorded (`ark forget`
# reports a deletion_requests materialization), even while some artifact was never built:
# the audit reports those as such.
ON_ARTIFACT_OR_REQUEST = (
    dg.AutomationCondition.any_deps_updated()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("on artifact rebuilds and deletion requests")


@dg.asset(
    group_name=GROUP,
    code_version="2",
    kinds={"json", "markdown"},
    deps=[*AUDITED_ARTIFACTS, DELETION_REQUESTS],
    automation_condition=ON_ARTIFACT_OR_REQUEST,
)
def compliance_audit(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    inbox: DialogueInbox,
    kb_inbox: KbInbox,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """The lineage audit of each current file artifact (tagged.pkl, the KB index, the SFT
    adapter): upstream materializations and code versions, source files with sha256 and
    licence, conversation keys, teacher, embedder and base model, PHI replaced, checks, and
    the deletion requests that taint it. ``audit.json`` + ``audit.md`` under
    artifacts/compliance/; ``ark audit <target>`` audits one artifact the same way."""
    # The whole code location's graph: a run's own job holds only the assets it selected.
    from ark_assets.definitions import defs

    stores = AuditStores(warehouse, inbox, kb_inbox, artifacts)
    collection = audit_collection(AUDITED_ARTIFACTS, context.instance, defs(), stores)
    audits = collection["artifacts"].values()
    json_path, markdown_path = write_report(
        artifacts.path("compliance"), "audit", collection, render_collection(collection)
    )
    tainted = [a["target"]["asset"] for a in audits if a["deletion"]["tainted"]]
    if tainted:
        context.log.warning(f"tainted by deletion requests: {', '.join(tainted)}")
    return dg.MaterializeResult(
        metadata={
            **file_metadata(json_path),
            "report": dg.MetadataValue.path(str(markdown_path)),
            "artifacts_audited": sum(a["artifact"]["materialized"] for a in audits),
            "tainted": len(tainted),
            "unlisted_sources": len({n for a in audits for n in a["sources"]["unlisted"]}),
            "findings": sum(len(a["findings"]) for a in audits),
        }
    )
