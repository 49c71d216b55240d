"""The eval inbox sensor: every new evaluation file becomes an eval_files partition and a run."""

from pathlib import Path

import dagster as dg

from ark_assets.defs.evaluation.jobs import eval_import_job
from ark_assets.defs.evaluation.resources import EvalInbox
from ark_assets.defs.partitions import EVAL_FILES, eval_files
from ark_assets.lib.ingest.inbox import ScanCache, batch_identity, scan


@dg.sensor(
    job=eval_import_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new eval-inbox file (MedArk test items, result files, MedRAG "
    "files, records.pkl) as an eval_files partition and imports it; content already known in the "
    "same format is skipped.",
)
def eval_inbox_sensor(
    context: dg.SensorEvaluationContext, eval_inbox: EvalInbox
) -> dg.SensorResult | dg.SkipReason:
    cache = ScanCache.from_cursor(context.cursor)
    known = {batch_identity(key) for key in context.instance.get_dynamic_partitions(EVAL_FILES)}
    new: list[str] = []
    for arrived in scan(Path(eval_inbox.path), cache):
        if batch_identity(arrived.key) not in known:
            known.add(batch_identity(arrived.key))
            new.append(arrived.key)
    context.update_cursor(cache.to_cursor())
    if not new:
        return dg.SkipReason(f"no new files in {eval_inbox.path}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key) for key in new],
        dynamic_partitions_requests=[eval_files.build_add_request(new)],
    )
