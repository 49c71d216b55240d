"""De-identification and deletion requests through Dagster, on real sample shapes."""

import pickle
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ark_assets.defs.compliance.deletion import forget, rebuild
from ark_assets.defs.training.resources import BaseModel
from ark_assets.lib.compliance.tombstones import CONVERSATION, SOURCE_FILE, NothingToForget
from ark_assets_tests.conftest import BAD_INPUTS, INGEST_SELECTION, SAMPLES, Platform
from ark_assets_tests.defs.synthesis.conftest import DEIDENTIFY, KB, SYNTHESIS, build, sample_file
from ark_assets_tests.lib.compliance.test_phi import FIXTURE_IDENTIFIERS

FAKE_PHI = BAD_INPUTS / "09_phi_like_FAKE.jsonl"
SFT = dg.AssetSelection.assets("sft_records", "sft_quarantine")
BATCH_CHAIN = INGEST_SELECTION | DEIDENTIFY | SYNTHESIS | SFT
# The batch-partitioned tables that hold a batch's rows (tag_collisions and the failure tables
# may be empty for a clean batch).
BATCH_TABLES = (
    "raw_dialogues",
    "quarantined_records",
    "tagged_dialogues",
    "deidentified_dialogues",
    "phi_findings",
    "ark_paths",
    "sft_records",
)
# Every asset of a dialogue batch: what a rebuild re-materializes for each batch it touches.
BATCH_ASSETS = {
    "raw_dialogues",
    "quarantined_records",
    "tagged_dialogues",
    "tag_collisions",
    "deidentified_dialogues",
    "phi_findings",
    "ark_paths",
    "ark_failures",
    "ark_entities",
    "ark_entity_failures",
    "sft_records",
    "sft_quarantine",
}


def _query(platform: Platform, sql: str) -> list[tuple]:
    with duckdb.connect(str(platform.root / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _dump(platform: Platform, table: str) -> str:
    return "\n".join(map(str, _query(platform, f"select * from ark.{table}")))


def test_fake_phi_never_reaches_the_deidentified_tables(platform: Platform) -> None:
    (batch,) = platform.ingest(FAKE_PHI)
    result = platform.materialize(DEIDENTIFY, batch)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"deidentified_dialogues_phi_free": True}
    for table in ("deidentified_dialogues", "phi_findings"):
        stored = _dump(platform, table)
        assert [value for value in FIXTURE_IDENTIFIERS if value in stored] == []
    assert "张测试" in _dump(platform, "tagged_dialogues")  # the raw layer still has it
    (event,) = [
        e for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("deidentified_dialogues")
    ]  # fmt: skip
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["dialogues"] == 2 and meta["dialogues_with_phi"] == 2
    assert meta["phi_findings"] == _query(platform, "select count(*) from ark.phi_findings")[0][0]
    spec = platform.defs.get_assets_def("deidentified_dialogues").specs_by_key
    assert spec[dg.AssetKey("deidentified_dialogues")].tags["ark/phi"] == "deidentified"


def _tables_with(platform: Platform, column: str) -> list[str]:
    rows = _query(
        platform,
        "select table_name from information_schema.columns "
        f"where table_schema = 'ark' and column_name = '{column}' order by 1",
    )
    return [name for (name,) in rows]


def _count(platform: Platform, table: str, key: str) -> int:
    sql = f"select count(*) from ark.{table} where conversation_id = '{key}'"
    return int(_query(platform, sql)[0][0])


def _batch_rows(platform: Platform, table: str, batch: str) -> int:
    return int(_query(platform, f"select count(*) from ark.{table} where batch = '{batch}'")[0][0])


def _holding(platform: Platform, column: str, value: str) -> set[str]:
    """The warehouse tables with a row whose ``column`` is ``value`` (the requests aside)."""
    return {
        table
        for table in _tables_with(platform, column)
        if table != "deletion_requests"
        and _query(platform, f"select count(*) from ark.{table} where {column} = '{value}'")[0][0]
    }


def _runs(results: list[dg.ExecuteInProcessResult]) -> list[tuple[str | None, set[str]]]:
    """Each rebuild run's partition and the assets it materialized. ``rebuild`` exits on a failed
    run (pytest reports the SystemExit as a failure), so what is left to check is that it ran
    what the request touches: the callers compare this list with the request."""
    assert [r.success for r in results] == [True] * len(results)
    return [
        (
            r.dagster_run.tags.get("dagster/partition"),
            {e.asset_key.to_user_string() for e in r.get_asset_materialization_events()},
        )
        for r in results
    ]


def test_forget_a_conversation_then_rebuild_removes_it_everywhere(
    platform: Platform, tiny_model: Path
) -> None:
    synthesis = build(platform, "zh", 12, 300)
    platform.resources["base_model"] = BaseModel(
        model=str(tiny_model), models_dir=str(platform.root / "models")
    )
    assert platform.materialize(dg.AssetSelection.assets("base_model")).success
    for selection in (SYNTHESIS, SFT):
        assert platform.materialize(selection, synthesis.batch).success
    assert platform.materialize(dg.AssetSelection.assets("tagged_pkl")).success
    ((key, digest, line),) = _query(
        platform,
        "select r.conversation_id, t.dialogue_sha256, t.record_index from ark.sft_records r "
        "join ark.tagged_dialogues t using (conversation_id) order by 1 limit 1",
    )
    by_key = _holding(platform, "conversation_id", key)
    assert {"tagged_dialogues", "deidentified_dialogues", "ark_paths", "sft_records"} <= by_key
    by_digest = _holding(platform, "dialogue_sha256", digest)
    assert "tagged_dialogues" in by_digest

    request = forget(key, platform.resources, platform.instance, requested_by="dpo", reason="T-1")
    assert [t.kind for t in request.tombstones] == [CONVERSATION]
    assert request.batches == [synthesis.batch] and not request.knowledge_base
    results = rebuild(request, platform.defs, platform.instance, platform.resources)
    runs = _runs(results)
    assert [partition for partition, _ in runs] == [synthesis.batch, None]
    assert runs[0][1] == BATCH_ASSETS
    assert "tagged_pkl" in runs[1][1] and "sft_adapter" not in runs[1][1]

    # Emptied, not dropped: every table that held the dialogue is still there, without it.
    assert by_key <= set(_tables_with(platform, "conversation_id"))
    assert by_digest <= set(_tables_with(platform, "dialogue_sha256"))
    assert _holding(platform, "conversation_id", key) == set()
    assert _holding(platform, "dialogue_sha256", digest) == set()
    exported = pickle.loads((platform.root / "artifacts" / "exports" / "tagged.pkl").read_bytes())
    assert key not in exported and len(exported) == synthesis.dialogues - 1
    accounted = [
        e for r in results for e in r.get_asset_check_evaluations()
        if e.check_name == "records_accounted"
    ]  # fmt: skip
    assert accounted and all(e.passed for e in accounted)
    assert accounted[0].metadata["forgotten"].value == 1
    requests = "select kind, conversation_id, requested_by, reason from ark.deletion_requests"
    assert _query(platform, requests) == [("conversation", key, "dpo", "T-1")]
    event = platform.instance.get_latest_materialization_event(dg.AssetKey("deletion_requests"))
    assert event and event.asset_materialization
    assert event.asset_materialization.metadata["request_id"].value == request.request_id

    # The same dialogue arriving again inside another file stays forgotten.
    again = platform.root / "again.jsonl"
    again.write_text((SAMPLES / "dialogues_zh_sample.jsonl").read_text().splitlines()[line] + "\n")
    (batch,) = platform.ingest(again)
    assert _query(platform, f"select count(*) from ark.raw_dialogues where batch = '{batch}'") == [
        (0,)
    ]
    (ingested,) = platform.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_dialogues"), asset_partitions=[batch]),
        limit=1,
    ).records
    assert ingested.asset_materialization
    counts = ingested.asset_materialization.metadata
    assert (counts["records_read"].value, counts["forgotten"].value) == (1, 1)  # not quarantined


def test_forget_a_knowledge_base_file_removes_its_documents_from_chroma(
    platform: Platform,
) -> None:
    inbox = Path(platform.resources["kb_inbox"].path)
    inbox.mkdir(parents=True)
    pairs = (SAMPLES / "kb_qa_sample.jsonl").read_text().splitlines()
    (inbox / "keep.jsonl").write_text("\n".join(pairs[:40]) + "\n")
    (inbox / "drop.jsonl").write_text("\n".join(pairs[40:60]) + "\n")
    assert platform.materialize(KB).success
    dropped = {
        doc_id for (doc_id,) in _query(
            platform, "select doc_id from ark.kb_sources where source_file = 'drop.jsonl'")
    }  # fmt: skip
    index = platform.resources["vector_store"].index(platform.resources["embedder"])
    assert len(dropped) == 20 and index.count() == 60
    landing = Path(platform.resources["kb_inbox"].landing_path)
    landed = sorted(landing.rglob("drop.jsonl"))
    assert landed

    request = forget(str(inbox / "drop.jsonl"), platform.resources, platform.instance)
    assert [(t.kind, t.source_name) for t in request.tombstones] == [(SOURCE_FILE, "drop.jsonl")]
    assert request.knowledge_base and request.batches == []
    assert sorted(request.deleted_files) == sorted([inbox / "drop.jsonl", *landed])
    assert not [p for p in request.deleted_files if p.exists()]
    assert (inbox / "keep.jsonl").exists() and list(landing.rglob("keep.jsonl"))
    ((partition, rebuilt),) = _runs(
        rebuild(request, platform.defs, platform.instance, platform.resources)
    )
    assert partition is None and {"kb_sources", "kb_quarantined_records", "kb_index"} <= rebuilt
    assert "sft_adapter" not in rebuilt

    stored = set(index.stored_metadata())
    assert index.count() == 40 and not stored & dropped
    assert _query(platform, "select count(*) from ark.kb_sources where source_file = 'drop.jsonl'"
                  ) == [(0,)]  # fmt: skip
    # Dropping the same file again (any name) does not bring it back.
    (inbox / "renamed.jsonl").write_text("\n".join(pairs[40:60]) + "\n")
    assert platform.materialize(KB).success and index.count() == 40


def test_unknown_targets_say_what_was_searched(platform: Platform) -> None:
    with pytest.raises(NothingToForget, match="neither a conversation key"):
        forget("no-such-key", platform.resources, platform.instance)


def test_the_ui_job_records_a_deletion_request(platform: Platform) -> None:
    (batch,) = platform.ingest(FAKE_PHI)
    ((key,),) = _query(platform, "select conversation_id from ark.tagged_dialogues limit 1")
    job = platform.defs.get_job_def("deletion_request_job")
    config = {"target": key, "requested_by": "privacy-office", "reason": "T-2"}
    result = job.execute_in_process(
        run_config={"ops": {"record_deletion_request": {"config": config}}},
        instance=platform.instance,
        resources=platform.resources,
    )
    assert result.success
    rows = _query(
        platform, "select conversation_id, requested_by, reason from ark.deletion_requests"
    )
    assert rows == [(key, "privacy-office", "T-2")]
    assert platform.materialize(DEIDENTIFY, batch).success
    assert _count(platform, "deidentified_dialogues", key) == 0


def test_the_ui_job_fails_with_the_reason_on_a_target_that_names_nothing(
    platform: Platform,
) -> None:
    job = platform.defs.get_job_def("deletion_request_job")
    for target, reason in (("", "the target is empty"), ("/etc/passwd", "not in an inbox")):
        config = {"target": target, "requested_by": "privacy-office"}
        result = job.execute_in_process(
            run_config={"ops": {"record_deletion_request": {"config": config}}},
            instance=platform.instance,
            resources=platform.resources,
            raise_on_error=False,
        )
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        assert (
            not result.success and reason in failure.step_failure_data.user_failure_data.description
        )


def test_forget_a_dialogue_file_empties_its_batch_and_deletes_its_copies(
    platform: Platform, tiny_model: Path
) -> None:
    platform.resources["base_model"] = BaseModel(
        model=str(tiny_model), models_dir=str(platform.root / "models")
    )
    assert platform.materialize(dg.AssetSelection.assets("base_model")).success
    kept, dropped = sample_file(platform.root, "en", 3), platform.root / FAKE_PHI.name
    dropped.write_text(FAKE_PHI.read_text() + "{not a record\n")  # a row for quarantined_records
    (kept_batch,) = platform.ingest(kept)
    (batch,) = platform.ingest(dropped)
    kb_inbox = Path(platform.resources["kb_inbox"].path)
    kb_inbox.mkdir(parents=True)
    (kb_inbox / "kb.jsonl").write_text((SAMPLES / "kb_qa_sample.jsonl").read_text())
    assert platform.materialize(KB).success  # what the synthesis layer retrieves from
    assert platform.materialize(BATCH_CHAIN, batch).success
    held = {table for table in BATCH_TABLES if _batch_rows(platform, table, batch)}
    assert held == set(BATCH_TABLES), held
    landed = platform.root / "landing" / batch
    assert landed.is_dir() and (platform.inbox / dropped.name).exists()

    # By path: the inbox copy (a path outside the inbox and landing area is refused).
    request = forget(
        str(platform.inbox / dropped.name), platform.resources, platform.instance, reason="T-3"
    )
    assert [(t.kind, t.batch) for t in request.tombstones] == [(SOURCE_FILE, batch)]
    assert request.batches == [batch] and not landed.exists()
    assert not (platform.inbox / dropped.name).exists()
    results = rebuild(request, platform.defs, platform.instance, platform.resources)
    runs = _runs(results)
    assert [partition for partition, _ in runs] == [batch, None] and runs[0][1] == BATCH_ASSETS
    assert {table: _batch_rows(platform, table, batch) for table in BATCH_TABLES} == dict.fromkeys(
        BATCH_TABLES, 0
    )
    assert _query(platform, "select distinct batch from ark.raw_dialogues") == [(kept_batch,)]
    (accounted,) = [
        e for e in results[0].get_asset_check_evaluations() if e.check_name == "records_accounted"
    ]
    assert accounted.passed and accounted.metadata["forgotten_file"].value is True


def test_a_deletion_request_triggers_a_new_audit(platform: Platform) -> None:
    audit = dg.AssetKey("compliance_audit")
    first = dg.evaluate_automation_conditions(
        defs=platform.defs,
        instance=platform.instance,
        asset_selection=dg.AssetSelection.assets(audit),
    )
    assert first.get_num_requested(audit) == 0
    platform.instance.report_runless_asset_event(dg.AssetMaterialization("deletion_requests"))
    after = dg.evaluate_automation_conditions(
        defs=platform.defs,
        instance=platform.instance,
        asset_selection=dg.AssetSelection.assets(audit),
        cursor=first.cursor,
    )
    assert after.get_num_requested(audit) == 1
