"""Runs whose process died (``kill -9``, an out-of-memory kill, a lost machine) are marked
failed and their pool slots freed, so later runs are not "blocked by limit for pool" forever.

Dagster's run monitoring cannot see a dead run worker under the local run launcher (it has no
health check), so a killed run stays STARTED and keeps its ``duckdb`` / ``teacher`` / ``gpu``
slot. Every run's process announces itself with a ``pid`` in an engine event (the run worker,
the multiprocess executor, the in-process executor); a run is dead when no process with that
pid has existed since the run started. ``reap_dead_runs`` marks such a run failed (with the
reason, visible in the UI) and frees its concurrency slots and pending steps; the
``dead_run_sensor`` does it every minute in ``dagster dev`` / the daemon, and ``ark demo`` /
``ark recover`` before they start.

Only a **local** instance (SQLite storage: one machine, so a pid means the same process) is
checked. On a shared (Postgres) instance runs are launched by a run launcher whose health
check Dagster's run monitoring uses (docs/runbook.md: ``run_monitoring`` and
``free_slots_after_run_end_seconds``), and ``reap_dead_runs`` leaves them alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg
import psutil
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

ALIVE_STATUSES = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)
# A process that started this long after the run's pid event is another one (pid reuse).
PID_REUSE_SLACK_S = 2.0


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job: str
    pid: int
    freed_slots: int


def is_local(instance: dg.DagsterInstance) -> bool:
    """One machine's instance: its run storage is SQLite (``dagster.yaml``'s default)."""
    storage = instance.run_storage
    wrapped = getattr(storage, "_storage", storage)  # the instance may wrap it
    return isinstance(wrapped, SqliteRunStorage)


def run_pids(instance: dg.DagsterInstance, run_id: str) -> list[tuple[int, float]]:
    """``(pid, when)`` of every engine event of the run that names its process."""
    found = []
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    for record in events:
        data = record.dagster_event.engine_event_data if record.dagster_event else None
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None and str(pid.value).isdigit():
            found.append((int(str(pid.value)), record.timestamp))
    return found


def _alive(pid: int, since: float) -> bool:
    try:
        return psutil.Process(pid).create_time() <= since + PID_REUSE_SLACK_S
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def dead_runs(instance: dg.DagsterInstance) -> Iterable[tuple[dg.DagsterRun, int]]:
    """Runs still STARTING/STARTED whose every announced process is gone (local instance)."""
    if not is_local(instance):
        return
    for record in instance.get_run_records(dg.RunsFilter(statuses=list(ALIVE_STATUSES))):
        pids = run_pids(instance, record.dagster_run.run_id)
        if pids and not any(_alive(pid, when) for pid, when in pids):
            yield record.dagster_run, pids[-1][0]


def reap_dead_runs(instance: dg.DagsterInstance) -> list[DeadRun]:
    """Mark every dead run failed and free its pool slots; what was reaped."""
    reaped = []
    for run, pid in list(dead_runs(instance)):
        instance.report_run_failed(
            run,
            f"ark: the run's process (pid {pid}) is gone (killed, or its machine stopped) while "
            "the run was in progress: marked failed and its pool slots freed (dead_run_sensor)",
        )
        freed = instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(DeadRun(run.run_id, run.job_name, pid, int(freed or 0)))
    return reaped


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process died (kill -9, out of memory) failed and frees their "
    "pool slots, so later runs are not blocked by a dead run (local instance; on Postgres, "
    "Dagster's run monitoring: docs/runbook.md).",
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    reaped = reap_dead_runs(context.instance)
    for dead in reaped:
        context.log.warning(
            f"run {dead.run_id} ({dead.job}): process {dead.pid} gone; marked failed, "
            f"{dead.freed_slots} pool slot(s) freed"
        )
    return dg.SkipReason(f"{len(reaped)} dead run(s) reaped" if reaped else "no dead run")
