"""The inbox sensor: every new file in the drop folder becomes a batch partition and a run."""

from pathlib import Path

import dagster as dg

from ark_assets.defs.ingest.jobs import ingest_job
from ark_assets.defs.partitions import DIALOGUE_BATCHES, dialogue_batches
from ark_assets.defs.resources import DialogueInbox
from ark_assets.lib.ingest.inbox import ScanCache, batch_digest, scan


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new inbox file as a dialogue_batches partition and ingests it; "
    "content already registered (under any file name) is skipped.",
)
def dialogue_inbox_sensor(
    context: dg.SensorEvaluationContext, inbox: DialogueInbox
) -> dg.SensorResult | dg.SkipReason:
    cache = ScanCache.from_cursor(context.cursor)
    known = context.instance.get_dynamic_partitions(DIALOGUE_BATCHES)
    known_digests = {batch_digest(key) for key in known}
    new: list[str] = []
    for arrived in scan(Path(inbox.path), cache):
        digest = batch_digest(arrived.key)
        if digest in known_digests:
            context.log.debug(f"{arrived.path.name}: content already ingested, skipped")
            continue
        known_digests.add(digest)
        new.append(arrived.key)
    context.update_cursor(cache.to_cursor())
    if not new:
        return dg.SkipReason(f"no new files in {inbox.path}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key) for key in new],
        dynamic_partitions_requests=[dialogue_batches.build_add_request(new)],
    )
