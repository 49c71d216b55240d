"""`make demo`: drop the bundled samples into the inboxes and materialize the whole graph.

The demo uses the persistent instance (``$DAGSTER_HOME``) and the environment's resources, so
everything it materializes shows up in the UI afterwards (`make ui`). It walks the asset graph in
dependency order and runs each stretch of assets that share a partitioning as one run per
partition (only partitions not materialized yet); unpartitioned assets run once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.defs.resources import data_dir
from ark_assets.defs.runs import QUIET_LOGGERS, runnable
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
    """Evaluate every inbox sensor once and register the partitions it asks for."""
    added: list[str] = []
    for sensor in definitions.get_repository_def().sensor_defs:
        if isinstance(sensor, dg.AutomationConditionSensorDefinition):
            continue
        context = dg.build_sensor_context(instance=instance, resources=resources)
        result = sensor(context)
        if isinstance(result, dg.SensorResult):
            for request in result.dynamic_partitions_requests or []:
                keys = list(request.partition_keys or [])
                instance.add_dynamic_partitions(request.partitions_def_name, keys)
                added += keys
    return added


def stretches(definitions: dg.Definitions) -> Iterator[Stretch]:
    graph = definitions.get_repository_def().asset_graph
    current: list[dg.AssetKey] = []
    partitions: dg.PartitionsDefinition | None = None
    for level in graph.toposorted_asset_keys_by_level:
        nodes = [graph.get(key) for key in level if graph.get(key).is_materializable]
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


def _up_to_date(graph: Any, instance: dg.DagsterInstance, stretch: Stretch) -> bool:
    """An unpartitioned stretch is skipped when each asset was materialized after every one of
    its upstream assets (a rerun of the demo then only does new work)."""

    def latest(key: dg.AssetKey) -> float | None:
        event = instance.get_latest_materialization_event(key)
        return event.timestamp if event else None

    for key in stretch.keys:
        own = latest(key)
        parents = [latest(parent) for parent in graph.get(key).parent_keys]
        if own is None or any(p is not None and p > own for p in parents):
            return False
    return True


def materialize_graph(
    definitions: dg.Definitions, instance: dg.DagsterInstance, resources: dict[str, Any]
) -> int:
    """Materialize every stretch; returns the number of runs launched."""
    everything = runnable(definitions)
    graph = definitions.get_repository_def().asset_graph
    runs = 0
    for stretch in stretches(definitions):
        selection = dg.AssetSelection.assets(*stretch.keys)
        if stretch.partitions_def is None:
            partition_keys: list[str | None] = (
                [] if _up_to_date(graph, instance, stretch) else [None]
            )
        else:
            done = instance.get_materialized_partitions(stretch.keys[-1])
            partition_keys = [
                key
                for key in stretch.partitions_def.get_partition_keys(
                    dynamic_partitions_store=instance
                )
                if key not in done
            ]
        ops = {
            key.to_user_string(): {"config": DEMO_RUN_CONFIG[key.to_user_string()]}
            for key in stretch.keys
            if key.to_user_string() in DEMO_RUN_CONFIG
        }
        names = ", ".join(k.to_user_string() for k in stretch.keys)
        for partition_key in partition_keys:
            print(f"materializing [{names}]" + (f" for {partition_key}" if partition_key else ""))
            started = time.monotonic()
            result = dg.materialize(
                everything,
                selection=selection,
                partition_key=partition_key,
                run_config={"ops": ops, "loggers": QUIET_LOGGERS},
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )
            runs += 1
            print(f"  {'ok' if result.success else 'FAILED'} in {time.monotonic() - started:.0f} s")
            if not result.success:
                raise SystemExit(
                    f"demo: run {result.run_id} for [{names}] partition {partition_key} failed; "
                    "open `make ui` → Runs to see the failing step and check"
                )
    return runs


def run_demo() -> dict[str, Any]:
    from ark_assets.definitions import defs

    definitions = defs()
    resources = dict(definitions.resources or {})
    with dg.DagsterInstance.get() as instance:
        dropped = drop_samples(resources)
        added = register_arrivals(definitions, instance, resources)
        runs = materialize_graph(definitions, instance, resources)
    return {
        "dropped": [str(p) for p in dropped],
        "new_partitions": added,
        "runs": runs,
        "data_dir": str(data_dir()),
        "resources": resources,
    }
