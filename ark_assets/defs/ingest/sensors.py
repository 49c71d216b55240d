"""The inbox sensor: every new file in the drop folder becomes a batch partition and a run."""

from pathlib import Path

import dagster as dg

from ark_assets.defs.ingest.jobs import ingest_job
from ark_assets.defs.partitions import DIALOGUE_BATCHES, dialogue_batches
from ark_assets.defs.resources import DialogueInbox
from ark_assets.lib.ingest.inbox import ScanCache, batch_identity, scan, symbolic_links


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new inbox file as a dialogue_batches partition and ingests it; "
    "content already registered in the same format (under any file name) is skipped, and "
    "symbolic links are never read.",
)
def dialogue_inbox_sensor(
    context: dg.SensorEvaluationContext, inbox: DialogueInbox
) -> dg.SensorResult | dg.SkipReason:
    cache = ScanCache.from_cursor(context.cursor)
    known = {
        batch_identity(key) for key in context.instance.get_dynamic_partitions(DIALOGUE_BATCHES)
    }
    new: list[str] = []
    for arrived in scan(Path(inbox.path), cache):
        if batch_identity(arrived.key) in known:
            context.log.debug(f"{arrived.path.name}: content already ingested, skipped")
            continue
        known.add(batch_identity(arrived.key))
        new.append(arrived.key)
    context.update_cursor(cache.to_cursor())
    links = symbolic_links(Path(inbox.path))
    if links:
        context.log.warning(f"not read, symbolic links in the inbox: {links}; copy the files in")
    if not new:
        ignored = f"; {len(links)} symbolic link(s) not read: {links}" if links else ""
        return dg.SkipReason(f"no new files in {inbox.path}{ignored}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key) for key in new],
        dynamic_partitions_requests=[dialogue_batches.build_add_request(new)],
    )
