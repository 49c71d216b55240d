"""Deletion requests: record one and, on request, carry it out (ark forget, deletion_request_job).

A request names a conversation (its key) or a source file: a path in an inbox or landing area
(its content digest is used; a path anywhere else is refused, so a request never reads a file
the platform was not given) or the exact name it arrived under. The tombstones go to
``ark.deletion_requests``; the inbox and landed copies of a forgotten file are deleted; a
materialization of ``deletion_requests`` is reported so the UI shows when it happened and which
layers are now behind it. ``--rebuild`` re-materializes every dialogue batch and knowledge-base
table the request touches (and the exports built from them), after which no DuckDB table, Chroma
collection or export holds the data. Trained adapters are not retrained here: the audit lists
them as tainted until they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.resources import WAREHOUSE_SCHEMA
from ark_assets.defs.runs import QUIET_LOGGERS, runnable
from ark_assets.lib import warehouse
from ark_assets.lib.compliance.targets import (
    InvalidTarget,
    checked_target,
    is_file_name,
    is_path,
    resolved_inside,
)
from ark_assets.lib.compliance.tombstones import (
    CONVERSATION,
    TABLE,
    NothingToForget,
    Tombstone,
    batches_holding,
    record_requests,
    resolve_conversation,
    resolve_source_file,
)
from ark_assets.lib.hashing import sha256_file
from ark_assets.lib.ingest.inbox import batch_digest, batch_key

# Steps that run models (the training layer, and every step in the `gpu` pool: agent_smoke,
# eval_predictions), and whatever is built on them, are retrained or re-run on purpose — a new
# adapter re-runs them and they leave forgotten dialogues out — never as a side effect of a
# deletion request.
_NOT_REBUILT_GROUPS = frozenset({"training", "agent"})
_MODEL_POOL = "gpu"


@dataclass(frozen=True)
class Request:
    request_id: str
    tombstones: list[Tombstone]
    deleted_files: list[Path]
    batches: list[str]  # dialogue batches to re-materialize
    knowledge_base: bool  # whether kb_sources must be re-materialized


def forget(
    target: str,
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
    *,
    requested_by: str | None = None,
    reason: str = "",
) -> Request:
    """Resolve ``target``, record its tombstones, delete the file copies, report the event.

    Raises InvalidTarget for a target that cannot name anything or a path outside the file
    stores, NothingToForget for one that names nothing the platform holds."""
    checked_target(target, "ark forget")
    digest = _path_digest(target, resources) if is_path(target) else None
    batches = instance.get_dynamic_partitions(str(dialogue_batches.name))
    arrived = {} if digest else _arrived_as(target, resources.get("inbox"), batches)
    with warehouse.connect(resources["warehouse"].database) as conn:
        tombstones = [] if digest else resolve_conversation(conn, WAREHOUSE_SCHEMA, target)
        tombstones = tombstones or resolve_source_file(
            conn, WAREHOUSE_SCHEMA, target, digest, batches, arrived
        )
        if not tombstones:
            raise NothingToForget(
                f"{target!r} is neither a conversation key in ark.tagged_dialogues nor a source "
                "file (a path in an inbox or landing area, or the exact name a dialogue/KB file "
                "arrived under) the platform holds"
            )
        rows = record_requests(
            conn, WAREHOUSE_SCHEMA, tombstones, requested_by=requested_by, reason=reason
        )
        batches_to_rebuild = batches_holding(conn, WAREHOUSE_SCHEMA, tombstones)
    request_id = rows["request_id"][0]
    deleted = _delete_copies(resources, {t.file_sha256 for t in tombstones if t.file_sha256})
    kb = any(t.kind != CONVERSATION and t.batch is None for t in tombstones)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            TABLE,
            description=f"deletion request {request_id}",
            metadata={
                "request_id": request_id,
                "kind": tombstones[0].kind,
                "tombstones": len(tombstones),
                "requested_by": rows["requested_by"][0],
                "reason": reason,
                "files_deleted": len(deleted),
            },
        )
    )
    return Request(request_id, tombstones, deleted, batches_to_rebuild, kb)


def _file_stores(resources: dict[str, Any]) -> list[Path]:
    """The inboxes and landing areas: where the platform keeps the files it was given."""
    folders = []
    for key in ("inbox", "kb_inbox"):
        if key in resources:
            folders += [Path(resources[key].path), Path(resources[key].landing_path)]
    return folders


def _path_digest(target: str, resources: dict[str, Any]) -> str:
    """The sha256 of the file at path ``target``, which must lie in a file store: the platform
    never reads a file it was not given (a path elsewhere, a symlink out, a device)."""
    stores = _file_stores(resources)
    path = resolved_inside(Path(target), stores)
    if path is None:
        raise InvalidTarget(
            f"ark forget: {target!r} is not in an inbox or landing area "
            f"({', '.join(map(str, stores))}); forget a file elsewhere by the exact name it "
            "arrived under"
        )
    if not path.is_file():
        raise InvalidTarget(f"ark forget: {target!r} is not a file")
    try:
        return sha256_file(path)
    except OSError as err:
        raise InvalidTarget(f"ark forget: cannot read {target!r}: {err.strerror}") from err


def _arrived_as(name: str, inbox: Any, batches: Sequence[str]) -> dict[str, str]:
    """Registered dialogue batches whose file arrived as exactly ``name``, with its sha256: the
    landed copy carries the name, or the inbox file of that name hashes to the batch's key."""
    if inbox is None or not is_file_name(name):
        return {}
    landing, folder = Path(inbox.landing_path), Path(inbox.path)
    arrived = {}
    for batch in (b for b in batches if is_file_name(b)):
        landed = landing / batch / name
        if landed.is_file() and not landed.is_symlink():
            arrived[batch] = sha256_file(landed)
    dropped = folder / name
    if dropped.is_file() and not dropped.is_symlink():
        digest = sha256_file(dropped)
        if (key := batch_key(name, digest)) in batches:
            arrived[key] = digest
    return arrived


def _delete_copies(resources: dict[str, Any], digests: set[str]) -> list[Path]:
    """Inbox and landed copies of forgotten files (matched by content, not by name)."""
    if not digests:
        return []
    folders = _file_stores(resources)
    # Landed copies sit in batch-key folders (<name>__<sha256 prefix>/): only those can match.
    prefixes = {batch_digest(batch_key("", digest)) for digest in digests}
    deleted = []
    for folder in folders:
        for file in sorted(folder.rglob("*")) if folder.is_dir() else []:
            landed = file.parent != folder
            if landed and batch_digest(file.parent.name) not in prefixes:
                continue
            # A symlink is not a copy the platform keeps, and what it points at is not ours.
            if file.is_file() and not file.is_symlink() and sha256_file(file) in digests:
                file.unlink()
                deleted.append(file)
                if landed and not any(file.parent.iterdir()):
                    file.parent.rmdir()
    return deleted


WAREHOUSE_GROUP = "warehouse"


def rebuild(
    request: Request,
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    resources: dict[str, Any],
) -> list[dg.ExecuteInProcessResult]:
    """Re-materialize what the request touches: each affected batch's chain, then the
    unpartitioned tables, indexes and exports downstream (not the training layer)."""
    graph = definitions.get_repository_def().asset_graph
    everything = runnable(definitions)
    nodes = [node for node in graph.asset_nodes if node.is_materializable]
    # A per-batch step that runs a model (dpo_rejections) is not re-run; the per-batch tables
    # built from it read its stale rows next to the rebuilt, forgotten-free inputs.
    per_batch = [
        node.key
        for node in nodes
        if node.partitions_def == dialogue_batches and _pool(node) != _MODEL_POOL
    ]
    roots = set(per_batch) if request.batches else set()
    if request.knowledge_base:
        roots.add(dg.AssetKey("kb_sources"))
    downstream = dg.AssetSelection.assets(*roots).downstream().resolve(graph) if roots else set()
    models = [
        n.key for n in nodes if n.group_name in _NOT_REBUILT_GROUPS or _pool(n) == _MODEL_POOL
    ]
    built_on_models = dg.AssetSelection.assets(*models).downstream().resolve(graph)
    unpartitioned = [
        node.key
        for node in nodes
        if node.key in downstream
        and node.partitions_def is None
        and node.key not in built_on_models
        and node.group_name != WAREHOUSE_GROUP
    ]
    # The SQL models are rebuilt whole (dbt builds what its tables allow): a subset would miss
    # the staging views of tables only the models' layers write.
    if any(node.group_name == WAREHOUSE_GROUP and node.key in downstream for node in nodes):
        unpartitioned += [node.key for node in nodes if node.group_name == WAREHOUSE_GROUP]
    # Only what the batch had: a layer never built for it (e.g. DPO before training) stays unbuilt.
    runs: list[tuple[list[dg.AssetKey], str | None]] = [
        ([k for k in per_batch if batch in instance.get_materialized_partitions(k)], batch)
        for batch in request.batches
    ]
    if unpartitioned:
        runs.append((unpartitioned, None))
    results = []
    for keys, partition in runs:
        result = dg.materialize(
            everything,
            selection=dg.AssetSelection.assets(*keys).required_multi_asset_neighbors(),
            partition_key=partition,
            instance=instance,
            resources=resources,
            tags={"ark/deletion_request": request.request_id},
            run_config={"loggers": QUIET_LOGGERS},
            raise_on_error=False,
        )
        results.append(result)
        if not result.success:
            raise SystemExit(
                f"ark forget: rebuild run {result.run_id} failed "
                f"({'batch ' + partition if partition else 'unpartitioned assets'}); see `make ui`"
            )
    return results


def _pool(node: Any) -> str | None:
    return node.assets_def.op.pool if node.assets_def.is_executable else None
