"""`make demo`: drop the bundled samples into the inboxes and materialize the whole graph.

The demo uses the persistent instance (``$DAGSTER_HOME``) and the environment's resources, so
everything it materializes shows up in the UI afterwards (`make ui`). It walks the asset graph in
dependency order and runs each stretch of assets that share a partitioning as one run per
partition (only partitions not materialized yet); unpartitioned assets run once.

A failed run stops only what depends on it: the same partition of later stretches (a failed
batch is not synthesized) and everything downstream of a failed unpartitioned asset. Other
batches go on, and assets that read all batches run on the ones that succeeded; the closing
summary lists every failed or skipped run and why, and `ark demo` then exits non-zero.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.defs.operations.dead_runs import reap_dead_runs
from ark_assets.defs.resources import data_dir
from ark_assets.defs.runs import QUIET_LOGGERS, failure_reason, runnable
from ark_assets.lib.artifacts import package_data
from ark_assets.lib.ingest.inbox import copy_into

SAMPLES = package_data("samples")
# resource key of a drop folder -> the bundled files the demo drops into it
DEMO_DROPS = {
    "inbox": ("dialogues_zh_sample.jsonl", "dialogues_en_sample.jsonl"),
    "kb_inbox": ("kb_qa_sample.jsonl",),
}
# Two CPU cores train SmolLM2 at ~150 tokens/s: a few steps prove the whole path (data → Pipes
# trainer → adapter → model card) in minutes; they do not make a useful model.
# Batch 1 keeps 2048-token examples within a laptop's memory without recomputation.
DEMO_RUN_CONFIG: dict[str, dict[str, Any]] = {
    "sft_adapter": {"max_steps": 4, "batch_size": 1, "save_steps": 2},
    # A 4-step adapter has not learned the tool-call format: every generation runs to its token
    # budget and is retried. Small budgets show the path (and the failures, honestly) in minutes.
    "agent_smoke": {"max_prefixes": 4, "max_new_tokens": 96},
    "eval_predictions": {"items_per_set": 3, "max_new_tokens": 96},
    # DPO: a few held-out paths per batch (their final call is grammar-constrained, so even the
    # 4-step adapter gives actions) and two steps: the chain and its curves, not learning.
    "dpo_rejections": {"max_paths": 4, "max_new_tokens": 160},
    "dpo_adapter": {"max_steps": 2, "save_steps": 1},
}


@dataclass(frozen=True)
class FailedRun:
    """A run that failed, or was not started because a run it depends on failed."""

    assets: str
    partition: str | None
    reason: str
    run_id: str | None = None  # None: not started


@dataclass
class DemoRuns:
    launched: int = 0
    failed: list[FailedRun] = field(default_factory=list)


@dataclass(frozen=True)
class Stretch:
    """Consecutive assets (in dependency order) sharing one partitions definition."""

    keys: tuple[dg.AssetKey, ...]
    partitions_def: dg.PartitionsDefinition | None


def drop_samples(resources: dict[str, Any]) -> list[Path]:
    dropped = []
    for resource_key, names in DEMO_DROPS.items():
        inbox = Path(resources[resource_key].path)
        dropped += copy_into(inbox, [SAMPLES / name for name in names])
    return dropped


def register_arrivals(
    definitions: dg.Definitions, instance: dg.DagsterInstance, resources: dict[str, Any]
) -> list[str]:
    """Evaluate every inbox sensor (``*_inbox_sensor``) once and register the partitions it asks
    for; the operations sensors (alerts, dead runs) watch runs, not files, and are left out."""
    added: list[str] = []
    for sensor in definitions.get_repository_def().sensor_defs:
        if not sensor.name.endswith("_inbox_sensor"):
            continue
        context = dg.build_sensor_context(instance=instance, resources=resources)
        result = sensor(context)
        if isinstance(result, dg.SensorResult):
            for request in result.dynamic_partitions_requests or []:
                keys = list(request.partition_keys or [])
                instance.add_dynamic_partitions(request.partitions_def_name, keys)
                added += keys
    return added


def stretches(
    definitions: dg.Definitions, only: set[dg.AssetKey] | None = None
) -> Iterator[Stretch]:
    graph = definitions.get_repository_def().asset_graph
    current: list[dg.AssetKey] = []
    partitions: dg.PartitionsDefinition | None = None
    for level in graph.toposorted_asset_keys_by_level:
        nodes = [
            graph.get(key)
            for key in level
            if graph.get(key).is_materializable and (only is None or key in only)
        ]
        # Assets of one level are independent: those continuing the current stretch go first,
        # then one partitioning at a time, so a multi-asset's outputs never straddle two runs.
        nodes.sort(
            key=lambda n: (n.partitions_def != partitions, repr(n.partitions_def), n.key.path)
        )
        for node in nodes:
            if current and node.partitions_def != partitions:
                yield Stretch(tuple(current), partitions)
                current = []
            current.append(node.key)
            partitions = node.partitions_def
    if current:
        yield Stretch(tuple(current), partitions)


def _stale(graph: Any, instance: dg.DagsterInstance, stretch: Stretch) -> list[dg.AssetKey]:
    """The assets of an unpartitioned stretch to rerun, in dependency order: never
    materialized, materialized before one of its upstream assets, or downstream of one that
    reruns now. The others are skipped, so new dialogues rerun the dialogue-side exports and
    not the knowledge base beside them."""

    def latest(key: dg.AssetKey) -> float | None:
        event = instance.get_latest_materialization_event(key)
        return event.timestamp if event else None

    stale: list[dg.AssetKey] = []
    for key in stretch.keys:
        own = latest(key)
        parents = graph.get(key).parent_keys
        newer = [p for p in parents if (t := latest(p)) is not None and own is not None and t > own]
        if own is None or newer or any(p in stale for p in parents):
            stale.append(key)
    # A multi-asset's outputs run together (its step cannot run a subset of them).
    together = {k for key in stale for k in graph.get(key).assets_def.keys}
    return [key for key in stretch.keys if key in together]


def materialize_graph(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    resources: dict[str, Any],
    only: set[dg.AssetKey] | None = None,
) -> DemoRuns:
    """Materialize every stretch (of the assets in ``only``, when given), going on past
    failures with whatever does not depend on them; returns the runs launched and the ones that
    failed or were skipped."""
    everything = runnable(definitions)
    graph = definitions.get_repository_def().asset_graph
    runs = DemoRuns()
    failed: dict[dg.AssetKey, set[str | None]] = {}  # asset -> failed partitions (None: all)
    for stretch in stretches(definitions, only):
        for partition_key, pending in _pending(graph, instance, stretch):
            where = f" for {partition_key}" if partition_key else ""
            blocked = _blocked(graph, stretch, partition_key, failed)
            for upstream in sorted(set(blocked.values())):
                held = ", ".join(k.to_user_string() for k, u in blocked.items() if u == upstream)
                print(f"skipping [{held}]{where}: {upstream} failed")
                runs.failed.append(FailedRun(held, partition_key, f"not run: {upstream} failed"))
            keys = [key for key in pending if key not in blocked]
            if keys:
                result = _run(everything, keys, partition_key, instance, resources)
                runs.launched += 1
                if not result.success:
                    done = {e.asset_key for e in result.get_asset_materialization_events()}
                    lost = [k for k in keys if k not in done] or keys
                    blocked.update(dict.fromkeys(lost, ""))
                    names = ", ".join(k.to_user_string() for k in lost)
                    reason = failure_reason(result)
                    runs.failed.append(FailedRun(names, partition_key, reason, result.run_id))
            for key in blocked:
                failed.setdefault(key, set()).add(partition_key)
    return runs


def _run(
    everything: list[Any],
    keys: list[dg.AssetKey],
    partition_key: str | None,
    instance: dg.DagsterInstance,
    resources: dict[str, Any],
) -> dg.ExecuteInProcessResult:
    names = [key.to_user_string() for key in keys]
    ops = {name: {"config": DEMO_RUN_CONFIG[name]} for name in names if name in DEMO_RUN_CONFIG}
    print(
        f"materializing [{', '.join(names)}]" + (f" for {partition_key}" if partition_key else "")
    )
    started = time.monotonic()
    result = dg.materialize(
        everything,
        selection=dg.AssetSelection.assets(*keys),
        partition_key=partition_key,
        run_config={"ops": ops, "loggers": QUIET_LOGGERS},
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    print(f"  {'ok' if result.success else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return result


def _pending(
    graph: Any, instance: dg.DagsterInstance, stretch: Stretch
) -> list[tuple[str | None, list[dg.AssetKey]]]:
    """``(partition, assets)`` to run for the stretch: each partition not materialized yet with
    all the stretch's assets, or (unpartitioned) the stale assets, if any."""
    if stretch.partitions_def is None:
        stale = _stale(graph, instance, stretch)
        return [(None, stale)] if stale else []
    done = instance.get_materialized_partitions(stretch.keys[-1])
    keys = stretch.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    return [(key, list(stretch.keys)) for key in keys if key not in done]


def _blocked(
    graph: Any,
    stretch: Stretch,
    partition_key: str | None,
    failed: dict[dg.AssetKey, set[str | None]],
) -> dict[dg.AssetKey, str]:
    """The stretch's assets that cannot run for this partition -> the failed asset upstream.

    An asset is held back by a failed (or skipped) parent of the same partition, or by any
    failed unpartitioned parent; an asset reading all partitions is not held back by one failed
    batch.
    """
    blocked: dict[dg.AssetKey, str] = {}
    for key in stretch.keys:  # in dependency order
        node = graph.get(key)
        for parent in sorted(node.parent_keys, key=str):
            lost = failed.get(parent, set())
            same_partitioning = graph.get(parent).partitions_def == node.partitions_def
            if parent in blocked:
                blocked[key] = blocked[parent]
            elif None in lost or (partition_key in lost and same_partitioning):
                blocked[key] = parent.to_user_string()
            else:
                continue
            break
    return blocked


def report_failures(failed: list[FailedRun]) -> None:
    """The closing list of what did not run, and why."""
    print(f"\n{len(failed)} run(s) failed or did not start:")
    for run in failed:
        where = f" for {run.partition}" if run.partition else ""
        run_id = f" (run {run.run_id}: make ui → Runs)" if run.run_id else ""
        print(f"  [{run.assets}]{where}: {run.reason}{run_id}")


def run_demo() -> dict[str, Any]:
    from ark_assets.definitions import defs

    definitions = defs()
    resources = dict(definitions.resources or {})
    with dg.DagsterInstance.get() as instance:
        for dead in reap_dead_runs(instance):  # a killed earlier run must not hold a pool slot
            print(f"run {dead.run_id} ({dead.job}): its process {dead.pid} is gone; marked "
                  f"failed, {dead.freed_slots} pool slot(s) freed", flush=True)  # fmt: skip
        dropped = drop_samples(resources)
        added = register_arrivals(definitions, instance, resources)
        runs = materialize_graph(definitions, instance, resources)
    return {
        "dropped": [str(p) for p in dropped],
        "new_partitions": added,
        "runs": runs.launched,
        "failed": runs.failed,
        "data_dir": str(data_dir()),
        "resources": resources,
    }
