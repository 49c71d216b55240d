"""Nightly training: only the adapters whose inputs changed since they were built."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from ark_assets.defs.operations.schedule import nightly_training, stale_adapters

BATCHES = dg.DynamicPartitionsDefinition(name="batches")


@dg.asset(partitions_def=BATCHES)
def sft_records() -> int:
    return 1


@dg.asset
def base_model() -> int:
    return 1


@dg.asset(deps=[sft_records, base_model])
def sft_adapter() -> int:
    return 1


@dg.asset(partitions_def=BATCHES)
def dpo_triples() -> int:
    return 1


@dg.asset(deps=[dpo_triples, sft_adapter])
def dpo_adapter() -> int:
    return 1


def _tick(instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 12, 2, 2, tzinfo=UTC)
    )
    result = nightly_training(context)
    assert isinstance(result, dg.RunRequest | dg.SkipReason)
    return result


def _selected(request: dg.RunRequest | dg.SkipReason) -> set[str]:
    assert isinstance(request, dg.RunRequest), request
    return {key.to_user_string() for key in request.asset_selection or []}


def test_training_runs_only_for_changed_inputs() -> None:
    with dg.instance_for_test() as instance:
        assert isinstance(_tick(instance), dg.SkipReason)  # no data yet: nothing to train
        instance.add_dynamic_partitions("batches", ["b1"])
        dg.materialize([base_model], instance=instance)
        dg.materialize([sft_records], instance=instance, partition_key="b1")
        first = _tick(instance)
        # SFT from the new records, and DPO after the SFT adapter this run trains
        assert _selected(first) == {"sft_adapter", "dpo_adapter"}
        assert isinstance(first, dg.RunRequest)
        assert "sft_adapter: sft_records, base_model newer" in first.tags["ark/reason"]
        dg.materialize([sft_adapter], instance=instance)
        dg.materialize([dpo_triples], instance=instance, partition_key="b1")
        dg.materialize([dpo_adapter], instance=instance)
        skipped = _tick(instance)
        assert isinstance(skipped, dg.SkipReason)  # the next night: nothing changed
        assert "nothing to train" in (skipped.skip_message or "")
        dg.materialize([dpo_triples], instance=instance, partition_key="b1")  # new triples only
        assert _selected(_tick(instance)) == {"dpo_adapter"}
        assert stale_adapters(instance) == {"dpo_adapter": ["dpo_triples"]}
