"""Synthesis assets materialized through Dagster: rules teacher end to end, the warm cache,
failures kept and blocking, and the lineage the UI shows."""

import json
from typing import Any

import dagster as dg

from ark_assets.defs.synthesis import assets as synthesis
from ark_assets.defs.synthesis.resources import TeacherResource
from ark_assets.lib.synthesis.models import STOP_REASONS
from ark_assets.lib.synthesis.tables import path_from_row
from ark_assets.testing.scripted_endpoint import Reply, ScriptedEndpoint, canned, output_name
from ark_assets_tests.conftest import Platform
from ark_assets_tests.defs.synthesis.conftest import Synthesis, build, checks, metadata
from ark_assets_tests.lib.synthesis.hostile_endpoint import closed_port_url


def test_rules_teacher_end_to_end_then_a_warm_cache_makes_no_call(platform: Platform) -> None:
    run = build(platform, "zh", dialogues=20, kb_pairs=300)
    cold = run.run()
    assert cold.success and all(checks(cold).values()) and len(checks(cold)) == 7
    paths_meta = metadata(cold, "ark_paths")
    prefixes = sum(run.table("tagged_dialogues")["n_turns"])
    assert paths_meta["dagster/row_count"] == prefixes
    assert (
        paths_meta["teacher_backend"] == "rules"
        and "no language model" in paths_meta["teacher_note"]
    )
    assert paths_meta["calls_made"] > prefixes and paths_meta["calls_failed"] == 0
    assert (
        paths_meta["kb_collection"].startswith("kb-hashing") and paths_meta["kb_documents"] == 300
    )
    assert set(paths_meta["stop_reasons"]) <= set(STOP_REASONS)
    assert metadata(cold, "ark_failures")["dagster/row_count"] == 0

    paths, entities = run.table("ark_paths"), run.table("ark_entities")
    assert {json.loads(t)["backend"] for t in paths["teacher_json"]} == {"rules"}
    assert all("no language model" in json.loads(t)["note"] for t in paths["teacher_json"])
    assert entities.height == paths["is_asking"].sum()
    restored = [path_from_row(row) for row in paths.iter_rows(named=True)]
    assert all(p.kb == paths_meta["kb"] and len(p.rounds) <= 2 for p in restored)

    warm = run.run()
    warm_meta = metadata(warm, "ark_paths")
    assert warm.success and warm_meta["calls_made"] == 0
    assert warm_meta["calls_cached"] == paths_meta["calls_made"] + paths_meta["calls_cached"]
    assert metadata(warm, "ark_entities")["calls_made"] == 0
    assert run.table("ark_paths").equals(paths) and run.table("ark_entities").equals(entities)


def _broken_checks(body: dict[str, Any], n: int) -> Reply:
    if output_name(body) == "ReasoningCheck":
        return Reply(content='{"reasoning": "unfinished", "deducible": ')
    return canned(body, n)


def test_failures_are_kept_and_a_high_failure_rate_blocks_downstream(platform: Platform) -> None:
    run = build(platform, "zh", dialogues=4, kb_pairs=100)
    with ScriptedEndpoint(_broken_checks) as endpoint:
        teacher = TeacherResource(
            backend="openai",
            model="scripted",
            api_key="local",
            base_url=endpoint.base_url,
            max_attempts=2,
            cache_path=str(platform.root / "cache" / "scripted.sqlite"),
        )
        result = run.run(teacher=teacher)
    outcome = checks(result)
    assert not result.success
    assert outcome[synthesis.PATH_FAILURE_RATE] is False
    assert outcome[synthesis.PREFIXES_ACCOUNTED] is True  # every prefix is a failure row
    failures = run.table("ark_failures")
    assert failures.height == sum(run.table("tagged_dialogues")["n_turns"])
    assert set(failures["stage"]) == {"check"} and set(failures["attempts"]) == {2}
    assert all("Expecting value" in e or "no JSON object" in e for e in failures["error"])
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "ark_failures" in materialized and "ark_entities" not in materialized
    failures_meta = metadata(result, "ark_failures")
    assert failures_meta["by_stage"] == {"check": failures.height}


def _openai_teacher(run: Synthesis, base_url: str, **settings: Any) -> TeacherResource:
    return TeacherResource(
        backend="openai",
        model="scripted",
        api_key="local",
        base_url=base_url,
        cache_path=str(run.platform.root / "cache" / "scripted.sqlite"),
        **settings,
    )


def _asks_about_nothing(body: dict[str, Any], n: int) -> Reply:
    """Every reply an ask, and no entity in any: "多久了？" ("how long?") names none."""
    asks = {"reasoning": "it asks how long", "is_asking": True}
    if output_name(body) == "AskCheck":
        return Reply(content=json.dumps(asks))
    if output_name(body) == "Response":
        return Reply(content=json.dumps({**asks, "entities": {}, "text": "多久了？"}))
    if output_name(body) == "Entities":
        return Reply(content="{}")
    return canned(body, n)


def test_asks_with_no_entity_are_counted_records_and_block_nothing(platform: Platform) -> None:
    run = build(platform, "zh", dialogues=2, kb_pairs=100)
    with ScriptedEndpoint(_asks_about_nothing) as endpoint:
        result = run.run(teacher=_openai_teacher(run, endpoint.base_url))
    assert result.success and all(checks(result).values()), checks(result)
    entities = run.table("ark_entities")
    assert entities.height == sum(run.table("tagged_dialogues")["n_turns"])
    assert set(entities["n_entities"]) == {0}
    assert metadata(result, "ark_entities")["asks_without_entities"] == entities.height
    assert metadata(result, "ark_entity_failures")["dagster/row_count"] == 0


def test_an_endpoint_down_stops_the_run_with_one_message_naming_it(platform: Platform) -> None:
    run = build(platform, "zh", dialogues=2, kb_pairs=100)
    url = closed_port_url()
    result = run.run(teacher=_openai_teacher(run, url, max_connection_failures=2))
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    messages = [error.message, *(e.message for e in [error.cause] if e is not None)]
    assert any(url in m and "ARK_TEACHER_MAX_CONNECTION_FAILURES (2)" in m for m in messages)
    assert not result.get_asset_materialization_events()


def test_lineage_groups_versions_and_checks_of_the_synthesis_assets(platform: Platform) -> None:
    graph = platform.defs.get_repository_def().asset_graph
    paths = graph.get(dg.AssetKey("ark_paths"))
    assert {k.to_user_string() for k in paths.parent_keys} == {
        synthesis.INPUT_DIALOGUES,
        synthesis.KB_INDEX,
    }
    assert {k.to_user_string() for k in graph.get(dg.AssetKey("ark_entities")).parent_keys} == {
        "ark_paths"
    }
    for name in ("ark_paths", "ark_failures", "ark_entities", "ark_entity_failures"):
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "synthesis" and node.code_version == "2"
        assert "dagster/column_schema" in node.metadata and node.automation_condition is not None
        assert node.partitions_def is not None and node.tags["ark/phi"] == "deidentified"
    specs = {
        spec.name: spec.blocking
        for asset in (synthesis.ark_paths, synthesis.ark_entities)
        for spec in asset.check_specs
    }
    assert specs == {
        synthesis.PREFIXES_ACCOUNTED: True,
        synthesis.PATH_FAILURE_RATE: True,
        synthesis.ASKING_HAVE_ENTITIES: True,
        synthesis.ENTITY_FAILURE_RATE: True,
    }
