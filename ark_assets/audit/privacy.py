"""The ``phi`` and ``deletion`` sections: the PHI found in and replaced from the artifact's
batches, and the deletion requests that taint the artifact."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ark_assets.audit.events import Materialization
from ark_assets.audit.stores import AuditStores
from ark_assets.lib import audit_report as report
from ark_assets.lib.forget import Identifiers, read_requests

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
