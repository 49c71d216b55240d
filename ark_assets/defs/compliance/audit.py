"""The compliance audit: every shipped artifact traced back to its sources, licences and checks."""

import dagster as dg

from ark_assets.audit import AuditStores, audit_collection, write_report
from ark_assets.defs.knowledge.resources import KbInbox
from ark_assets.defs.metadata import file_metadata
from ark_assets.defs.resources import ArtifactStore, DialogueInbox, Warehouse
from ark_assets.lib.audit_report import render_collection
from ark_assets.lib.forget import TABLE as DELETION_REQUESTS

GROUP = "compliance"
# The file artifacts that leave the platform (exports, the index, adapters): each is audited.
AUDITED_ARTIFACTS = ("tagged_pkl", "kb_index", "sft_adapter")


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
    code_version="1",
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

    stores = AuditStores(warehouse, inbox, kb_inbox)
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
