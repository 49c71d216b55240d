"""An adapter older than its newest input by more than the window gets a warning."""

from __future__ import annotations

import dagster as dg

from ark_assets.defs.operations.freshness import freshness
from ark_assets_tests.defs.operations.test_schedule import base_model, sft_adapter, sft_records


def test_an_adapter_older_than_its_data_is_flagged() -> None:
    with dg.instance_for_test() as instance:
        assert freshness(instance, "sft_adapter", 36).passed  # never built: not judged
        instance.add_dynamic_partitions("batches", ["b1", "b2"])
        dg.materialize([base_model], instance=instance)
        dg.materialize([sft_records], instance=instance, partition_key="b1")
        dg.materialize([sft_adapter], instance=instance)
        fresh = freshness(instance, "sft_adapter", 0.0)
        assert fresh.passed and fresh.metadata["lag_hours"].value == 0.0
        dg.materialize([sft_records], instance=instance, partition_key="b2")  # new data
        stale = freshness(instance, "sft_adapter", 0.0)  # a zero window: any lag is too much
        assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
        assert "older than its newest input (sft_records)" in (stale.description or "")
        assert freshness(instance, "sft_adapter", 36).passed  # seconds old: within 36 h
