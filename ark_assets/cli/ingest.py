"""`ark ingest PATH…`: ingest dialogue files from the command line, without the UI or a demo.

It runs what a file dropped into the inbox gets: the files are copied into the inbox,
``dialogue_inbox_sensor`` registers their batches, and ``ingest_job`` runs once for each batch not
ingested yet, on the ``$DAGSTER_HOME`` instance (so the runs show in `make ui`). Prints records
read / accepted / quarantined per file; exits 1 when a run fails, 2 when a path is not a file.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.cli.instance import dagster_home
from ark_assets.defs.ingest.jobs import ingest_job
from ark_assets.defs.ingest.sensors import dialogue_inbox_sensor
from ark_assets.defs.partitions import DIALOGUE_BATCHES
from ark_assets.defs.runs import QUIET_LOGGERS, failure_reason
from ark_assets.lib.ingest.inbox import batch_identity, batch_key, copy_into

RAW_DIALOGUES = dg.AssetKey("raw_dialogues")
COUNTS = ("records_read", "accepted", "quarantined", "forgotten")


def ingest_command(args: argparse.Namespace) -> None:
    from ark_assets.definitions import defs

    paths: list[Path] = args.paths
    not_files = [str(p) for p in paths if not p.is_file()]
    if not_files:
        print(f"ark ingest: not a file: {', '.join(not_files)}", file=sys.stderr)
        raise SystemExit(2)
    dagster_home(create=True)
    definitions = defs()
    resources = dict(definitions.resources or {})
    copy_into(Path(resources["inbox"].path), paths)
    failed = 0
    with dg.DagsterInstance.get() as instance:
        batches = register(instance, resources)
        job = definitions.resolve_job_def(ingest_job.name)
        for path in paths:
            key = batches[_identity(path)]
            if instance.get_materialized_partitions(RAW_DIALOGUES) & {key}:
                print(f"{path.name}: already ingested as {key}: {_stored_counts(instance, key)}")
                continue
            result = job.execute_in_process(
                partition_key=key,
                instance=instance,
                run_config={"loggers": QUIET_LOGGERS},
                raise_on_error=False,
            )
            counts = _run_counts(result)
            if result.success:
                print(f"{path.name}: {key}: {counts}")
            else:
                failed += 1
                print(f"{path.name}: {key}: FAILED (run {result.run_id}): {failure_reason(result)}")
                print(f"  {counts}" if counts else "  nothing was stored")
    if failed:
        raise SystemExit(1)


def register(instance: dg.DagsterInstance, resources: dict[str, Any]) -> dict[tuple, str]:
    """Evaluate the inbox sensor once and register what it asks for; returns every registered
    batch by identity (format, content digest)."""
    context = dg.build_sensor_context(instance=instance, resources={"inbox": resources["inbox"]})
    result = dialogue_inbox_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(DIALOGUE_BATCHES, list(request.partition_keys or []))
    return {batch_identity(k): k for k in instance.get_dynamic_partitions(DIALOGUE_BATCHES)}


def _identity(path: Path) -> tuple[str, str]:
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return batch_identity(batch_key(path.name, digest))


def _format(metadata: Mapping[str, Any]) -> str:
    values = {k: getattr(v, "value", v) for k, v in metadata.items()}
    return "  ".join(f"{k.replace('records_', '')} {values[k]}" for k in COUNTS if k in values)


def _run_counts(result: dg.ExecuteInProcessResult) -> str:
    for event in result.get_asset_materialization_events():
        if event.asset_key == RAW_DIALOGUES:
            return _format(event.materialization.metadata)
    return ""


def _stored_counts(instance: dg.DagsterInstance, key: str) -> str:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_DIALOGUES, asset_partitions=[key]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    return _format(materialization.metadata) if materialization else "no counts recorded"
