"""The KB inbox sensor: any change to the set of QA files reloads the knowledge base."""

import json
from pathlib import Path

import dagster as dg

from ark_assets.defs.knowledge.jobs import kb_sources_job
from ark_assets.defs.knowledge.resources import KbInbox
from ark_assets.lib.ingest.inbox import ScanCache
from ark_assets.lib.knowledge.inbox import current_files, fingerprint


@dg.sensor(
    job=kb_sources_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a kb_sources run whenever a file in the KB inbox is added, changed "
    "or removed; an unchanged inbox never triggers twice.",
)
def kb_inbox_sensor(
    context: dg.SensorEvaluationContext, kb_inbox: KbInbox
) -> dg.RunRequest | dg.SkipReason:
    state = json.loads(context.cursor) if context.cursor else {}
    cache = ScanCache(state.get("files"))
    files = current_files(Path(kb_inbox.path), cache)
    current = fingerprint(files) if files else None
    changed = current is not None and current != state.get("fingerprint")
    # The change counter is part of the run key: going back to an earlier set of files (a file
    # removed again) is a change too, and Dagster never launches a run key twice.
    changes = state.get("changes", 0) + changed
    context.update_cursor(
        json.dumps({"files": cache.entries, "fingerprint": current, "changes": changes})
    )
    if current is None:
        return dg.SkipReason(f"no files in {kb_inbox.path}")
    if not changed:
        return dg.SkipReason("the KB inbox is unchanged")
    return dg.RunRequest(run_key=f"{current[:16]}-{changes}", tags={"ark/kb_files": current[:12]})
