"""De-identification and deletion requests through Dagster, on real sample shapes."""

import pickle
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ark_assets.defs.training.resources import BaseModel
from ark_assets.forget import forget, rebuild
from ark_assets.lib.forget import CONVERSATION, SOURCE_FILE, NothingToForget
from ark_assets_tests.conftest import BAD_INPUTS, SAMPLES, Platform
from ark_assets_tests.defs.synthesis.conftest import DEIDENTIFY, KB, SYNTHESIS, build, sample_file
from ark_assets_tests.lib.test_phi import FIXTURE_IDENTIFIERS

FAKE_PHI = BAD_INPUTS / "09_phi_like_FAKE.jsonl"
SFT = dg.AssetSelection.assets("sft_records", "sft_quarantine")


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
    holding = [
        table
        for table in _tables_with(platform, "conversation_id")
        if _query(platform, f"select count(*) from ark.{table} where conversation_id = '{key}'")[0][
            0
        ]
    ]
    assert {"tagged_dialogues", "deidentified_dialogues", "ark_paths", "sft_records"} <= set(
        holding
    )

    request = forget(key, platform.resources, platform.instance, requested_by="dpo", reason="T-1")
    assert [t.kind for t in request.tombstones] == [CONVERSATION]
    assert request.batches == [synthesis.batch] and not request.knowledge_base
    results = rebuild(request, platform.defs, platform.instance, platform.resources)
    assert all(r.success for r in results)

    for table in _tables_with(platform, "conversation_id"):
        if table != "deletion_requests":
            assert _count(platform, table, key) == 0, table
    for table in _tables_with(platform, "dialogue_sha256"):
        if table == "deletion_requests":
            continue
        sql = f"select count(*) from ark.{table} where dialogue_sha256 = '{digest}'"
        assert _query(platform, sql) == [(0,)], table
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

    request = forget(str(inbox / "drop.jsonl"), platform.resources, platform.instance)
    assert [(t.kind, t.source_name) for t in request.tombstones] == [(SOURCE_FILE, "drop.jsonl")]
    assert request.knowledge_base and request.batches == []
    assert not (inbox / "drop.jsonl").exists()
    assert all(p.name != "drop.jsonl" or not p.exists() for p in request.deleted_files)
    assert all(r.success for r in rebuild(request, platform.defs, platform.instance,
                                          platform.resources))  # fmt: skip

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


def test_forget_a_dialogue_file_empties_its_batch_and_deletes_its_copies(
    platform: Platform, tiny_model: Path
) -> None:
    platform.resources["base_model"] = BaseModel(
        model=str(tiny_model), models_dir=str(platform.root / "models")
    )
    assert platform.materialize(dg.AssetSelection.assets("base_model")).success
    kept, dropped = sample_file(platform.root, "en", 3), FAKE_PHI
    (kept_batch,) = platform.ingest(kept)
    (batch,) = platform.ingest(dropped)
    landed = platform.root / "landing" / batch
    assert landed.is_dir() and (platform.inbox / dropped.name).exists()

    request = forget(str(dropped), platform.resources, platform.instance, reason="T-3")
    assert [(t.kind, t.batch) for t in request.tombstones] == [(SOURCE_FILE, batch)]
    assert request.batches == [batch] and not landed.exists()
    assert not (platform.inbox / dropped.name).exists()
    results = rebuild(request, platform.defs, platform.instance, platform.resources)
    assert all(r.success for r in results)
    for table in (
        "raw_dialogues",
        "quarantined_records",
        "tagged_dialogues",
        "deidentified_dialogues",
        "phi_findings",
        "ark_paths",
        "sft_records",
    ):
        sql = f"select count(*) from ark.{table} where batch = '{batch}'"
        assert _query(platform, sql) == [(0,)], table  # fmt: skip
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
