"""The ``conversations`` section: the conversation keys an artifact was built from (an adapter's
lineage, the keys of a pickled export, or the warehouse table) and their dialogue digests."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from ark_assets.audit.stores import AuditStores
from ark_assets.audit.targets import Target, recorded_paths
from ark_assets.lib.hashing import dialogue_sha256, ids_digest
from ark_assets.lib.warehouse import table_exists


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
