"""The dbt project through Dagster: one connected graph, a build on the platform's table shapes,
a mart that agrees with polars on the same rows, and promise tests that fail on bad data."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl

from ark_assets.defs.warehouse.assets import MANIFEST_JSON, TRANSLATOR, WAREHOUSE_AUTOMATION
from ark_assets.lib.warehouse import connect
from ark_assets.lib.warehouse.project import required_tables
from ark_assets_tests.defs.warehouse.conftest import Built
from ark_assets_tests.defs.warehouse.tables import NOT_WRITTEN

# The staging models over the tables the fixture leaves unwritten (tables.NOT_WRITTEN).
LEFT_OUT = {"stg_agent_runs", "stg_ark_entities"}


def _warehouse_keys(defs: dg.Definitions) -> set[str]:
    graph = defs.get_repository_def().asset_graph
    return {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == "warehouse"
    }


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_dbt_build_materializes_every_model_whose_tables_exist(built: Built) -> None:
    result = built.result
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == _warehouse_keys(built.platform.defs) - LEFT_OUT
    checks = _checks(result)
    assert len(checks) > 100 and all(checks.values()), [n for n, ok in checks.items() if not ok]
    warning = next(m for m in built.logs() if m.startswith("left out until their tables exist"))
    assert all(f"source:ark.{table}+" in warning for table in NOT_WRITTEN)
    (stats,) = [
        e.materialization for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("dialogue_stats")
    ]  # fmt: skip
    rows = built.query("select count(*) as n from marts.dialogue_stats")["n"][0]
    assert stats.metadata["dagster/row_count"].value == rows == 3  # 2 sources + 1 empty batch


def test_sources_map_to_the_python_assets_that_write_them(built: Built) -> None:
    graph = built.platform.defs.get_repository_def().asset_graph
    source = {"resource_type": "source", "source_name": "ark", "name": "raw_dialogues"}
    assert TRANSLATOR.get_asset_key(source) == dg.AssetKey("raw_dialogues")
    for table in {s["name"] for s in MANIFEST_JSON["sources"].values()}:
        node = graph.get(dg.AssetKey(table))
        assert node.group_name != "warehouse", table  # the Python asset, not a stub
        assert node.is_materializable or table == "deletion_requests", table
        assert dg.AssetKey(f"stg_{table}") in node.child_keys or table == "agent_smoke", table
    assert graph.get(dg.AssetKey("stg_agent_runs")).parent_keys == {dg.AssetKey("agent_smoke")}
    # The two models that read files depend on the assets that write them.
    assert graph.get(dg.AssetKey("stg_landed_files")).parent_keys == {dg.AssetKey("raw_dialogues")}
    adapters = graph.get(dg.AssetKey("stg_adapter_cards")).parent_keys
    assert adapters == {dg.AssetKey("sft_adapter"), dg.AssetKey("dpo_adapter")}
    assert graph.get(dg.AssetKey("dialogue_stats")).parent_keys == {
        dg.AssetKey("stg_raw_dialogues"), dg.AssetKey("stg_quarantined_records")
    }  # fmt: skip
    for key in _warehouse_keys(built.platform.defs):
        node = graph.get(dg.AssetKey(key))
        assert node.automation_condition == WAREHOUSE_AUTOMATION, key
        assert node.code_version and node.description, key
    assert required_tables(MANIFEST_JSON) == {s["name"] for s in MANIFEST_JSON["sources"].values()
                                             } - {"deletion_requests"}  # fmt: skip


def _characters(turns_json: str) -> int:
    return sum(len(text or "") for turn in json.loads(turns_json) for text in turn.values())


COUNTS = ["dialogues", "turns", "characters", "zh_dialogues", "en_dialogues"]
BATCH_COLUMNS = ["batch_records", "batch_quarantined", "batch_quarantine_rate"]


def test_dialogue_stats_agrees_with_polars_on_the_same_rows(built: Built) -> None:
    raw = built.query("select * from ark.raw_dialogues")
    quarantined = built.query("select batch from ark.quarantined_records")
    accepted = (
        raw.with_columns(
            pl.col("source").fill_null("(unspecified)"),
            pl.col("turns_json").map_elements(_characters, return_dtype=pl.Int64).alias("chars"),
        )
        .group_by("batch", "source")
        .agg(
            pl.len().alias("dialogues"),
            pl.col("n_turns").sum().alias("turns"),
            pl.col("chars").sum().alias("characters"),
            (pl.col("language") == "zh").sum().alias("zh_dialogues"),
            (pl.col("language") == "en").sum().alias("en_dialogues"),
        )
    )
    records = pl.concat([raw.select("batch"), quarantined]).group_by("batch").len("batch_records")
    per_batch = records.join(
        quarantined.group_by("batch").len("batch_quarantined"), on="batch", how="left"
    ).with_columns(pl.col("batch_quarantined").fill_null(0))
    expected = (
        per_batch.join(accepted, on="batch", how="left")
        .with_columns(
            pl.col("source").fill_null("(none accepted)"),
            pl.col(COUNTS).fill_null(0),
            (pl.col("batch_quarantined") / pl.col("batch_records")).alias("batch_quarantine_rate"),
        )
        .select("batch", "source", *COUNTS, *BATCH_COLUMNS)
        .cast({c: pl.Int64 for c in [*COUNTS, "batch_records", "batch_quarantined"]})
    )
    mart = built.query("select * from marts.dialogue_stats").select(expected.columns)
    assert mart.sort("batch", "source").equals(expected.sort("batch", "source"))
    assert mart["dialogues"].sum() == raw.height == 26
    assert mart.unique("batch")["batch_quarantined"].sum() == quarantined.height == 6


def test_promise_tests_fail_on_planted_bad_data(built: Built, tmp_path: Path) -> None:
    platform = built.copy(tmp_path)
    with connect(tmp_path / "warehouse.duckdb") as conn:
        # A held-out conversation gets one train example; a quarantined record disappears.
        conn.execute(
            "update ark.sft_records set split = 'train' where (conversation_id, turn_index, step)"
            " = (select (conversation_id, turn_index, step) from ark.sft_records"
            " where split = 'heldout' order by all limit 1)"
        )
        conn.execute("delete from ark.quarantined_records where record_index = 0")
    selection = dg.AssetSelection.assets(
        "stg_sft_records", "stg_landed_files", "stg_heldout_eval_items", "stg_dpo_triples"
    )
    result = platform.materialize(selection, raise_on_error=False)
    assert not result.success  # a failing dbt test fails the step: the marts are not rebuilt
    checks = _checks(result)
    broken = {
        "assert_sft_splits_disjoint",
        "assert_heldout_items_never_trained",
        "assert_dpo_triples_held_out",
        "assert_records_accounted",
    }
    assert {name for name, passed in checks.items() if not passed} == broken
    assert checks["assert_sft_records_trace_to_landed_files"]


def test_marts_refresh_when_their_upstream_assets_do(built: Built) -> None:
    defs, instance = built.platform.defs, built.platform.instance
    selection = dg.AssetSelection.groups("warehouse")
    first = dg.evaluate_automation_conditions(defs, instance, asset_selection=selection)
    instance.report_runless_asset_event(dg.AssetMaterialization("kb_sources"))
    after = dg.evaluate_automation_conditions(
        defs, instance, asset_selection=selection, cursor=first.cursor
    )
    requested = {key for key in _warehouse_keys(defs) if after.get_num_requested(dg.AssetKey(key))}
    assert requested == {"stg_kb_sources", "kb_coverage"}  # what reads kb_sources, nothing else
