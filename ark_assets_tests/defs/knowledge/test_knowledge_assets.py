"""The knowledge layer materialized through Dagster on a temp data dir, hashing embedder."""

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ark_assets.defs.knowledge.assets import RECALL_AT_5_FLOOR, RECORDS_ACCOUNTED
from ark_assets.defs.knowledge.checks import KB_INDEX_MATCHES_SOURCES
from ark_assets.lib.ingest.dialogues import Rule
from ark_assets.lib.knowledge.store import KnowledgeIndex
from ark_assets_tests.defs.knowledge.conftest import KnowledgeBase, eval_config, sample_lines

SOURCES = dg.AssetSelection.assets("kb_sources", "kb_quarantined_records")
INDEX = SOURCES | dg.AssetSelection.assets("kb_index")


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _query(kb: KnowledgeBase, sql: str) -> list[tuple]:
    with duckdb.connect(str(kb.root / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _drop_mixed_inbox(kb: KnowledgeBase) -> None:
    kb.drop("a_sample.jsonl", sample_lines(0, 60))
    first = json.loads(sample_lines(0, 1))
    kb.drop(
        "b_extra.csv",
        "question,answer,source\n"
        f'"{first["question"].replace("，", ",")}",{first["answer"]},csv\n'  # a duplicate
        "头痛三天怎么办,注意休息，必要时就医,csv\n"
        "空答案的问题,,csv\n",
    )
    kb.drop(
        "c_medark.json",
        json.dumps([{"q": "孩子咳嗽有痰吃什么药", "a": "可用氨溴索化痰"}, {"q": "发烧", "a": 39}]),
    )


def test_mixed_inbox_to_index_and_report(kb: KnowledgeBase) -> None:
    _drop_mixed_inbox(kb)
    result = kb.materialize()
    assert result.success
    sources = kb.metadata(result, "kb_sources")
    assert {k: sources[k] for k in ("records_read", "documents", "duplicates_collapsed")} == {
        "records_read": 65,
        "documents": 62,
        "duplicates_collapsed": 1,
    }
    assert sources["quarantined"] == 2 and sources["dagster/row_count"] == 62
    rules = dict(_query(kb, "select rule, count(*) from ark.kb_quarantined_records group by 1"))
    assert rules == {Rule.EMPTY_TEXT: 1, Rule.WRONG_TYPE: 1}
    assert _query(kb, "select max(occurrences), count(*) from ark.kb_sources") == [(2, 62)]
    landed = sorted(p.name for p in (kb.root / "landing" / "kb").glob("*/*"))
    assert landed == ["a_sample.jsonl", "b_extra.csv", "c_medark.json"]

    index = kb.metadata(result, "kb_index")
    assert (index["added"], index["removed"], index["kept"], index["dagster/row_count"]) == (
        62,
        0,
        0,
        62,
    )
    assert index["embedder"] == "hashing-v1-d1024-n123" and index["dimension"] == 1024
    assert index["collection"].startswith("kb-hashing") and Path(index["path"]).is_dir()
    assert all(_checks(result).values()) and len(_checks(result)) == 7

    report = kb.metadata(result, "kb_retrieval_eval")
    assert report["dagster/row_count"] == 2  # dense and hybrid
    assert [r.data["mode"] for r in report["results"].records] == ["dense", "hybrid"]
    assert Path(report["path"]).read_text().startswith("# Knowledge-base retrieval report")
    modes = _query(kb, "select mode, queries, recall_at_5 from ark.kb_retrieval_eval order by 1")
    assert [(m, q) for m, q, _ in modes] == [("dense", 30), ("hybrid", 30)]
    assert all(0.0 <= r <= 1.0 for _, _, r in modes)

    retriever = kb.resources["vector_store"].retriever(kb.resources["embedder"])
    hits = retriever.search("孩子咳嗽有痰，该吃什么药？", k=2)
    assert hits[0].question == "孩子咳嗽有痰吃什么药" and hits[0].answer == "可用氨溴索化痰"


def test_rematerialization_embeds_only_what_changed(kb: KnowledgeBase) -> None:
    kb.drop("a.jsonl", sample_lines(0, 40))
    kb.drop("b.jsonl", sample_lines(40, 50))
    first = kb.materialize(INDEX)
    assert kb.metadata(first, "kb_index")["added"] == 50
    (kb.inbox / "b.jsonl").unlink()
    kb.drop("c.jsonl", sample_lines(50, 55))
    second = kb.materialize(INDEX)
    meta = kb.metadata(second, "kb_index")
    assert (meta["added"], meta["removed"], meta["kept"], meta["dagster/row_count"]) == (
        5,
        10,
        40,
        45,
    )
    assert meta["content_digest"] != kb.metadata(first, "kb_index")["content_digest"]
    assert all(_checks(second).values())


def test_index_check_blocks_the_evaluation(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A foreign write into the collection fails the blocking check; the eval does not run."""
    original = KnowledgeIndex.sync

    def sync_then_tamper(self: KnowledgeIndex, *args, **kwargs):
        stats = original(self, *args, **kwargs)
        vector = self.embedder.embed_documents(["rogue"])
        self.collection.add(
            ids=["rogue"],
            embeddings=vector,
            documents=["rogue"],
            metadatas=[{"question": "rogue", "answer": "x", "doc_id": "rogue"}],
        )
        return stats

    monkeypatch.setattr(KnowledgeIndex, "sync", sync_then_tamper)
    kb.drop("a.jsonl", sample_lines(0, 20))
    result = kb.materialize()
    assert not result.success
    assert _checks(result)[KB_INDEX_MATCHES_SOURCES] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "kb_index" in materialized and "kb_retrieval_eval" not in materialized


def test_recall_floor_warns_without_blocking(kb: KnowledgeBase) -> None:
    kb.drop("a.jsonl", sample_lines(0, 30))
    result = kb.materialize(run_config=eval_config(held_out_documents=5, recall_at_5_floor=1.01))
    assert result.success
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == RECALL_AT_5_FLOOR
    ]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert _checks(result)[RECORDS_ACCOUNTED]


def test_eval_scores_each_configured_embedder(kb: KnowledgeBase) -> None:
    kb.drop("a.jsonl", sample_lines(0, 25))
    config = eval_config(held_out_documents=5, hybrid=False, compare_embedders=["multilingual_e5"])
    result = kb.materialize(run_config=config)
    assert result.success
    rows = _query(kb, "select embedder, mode, queries from ark.kb_retrieval_eval order by 1")
    assert [(mode, n) for _, mode, n in rows] == [("dense", 15), ("dense", 15)]
    assert rows[0][0].startswith("hashing") and "e5" in rows[1][0]


def test_an_empty_inbox_fails_instead_of_emptying_the_index(kb: KnowledgeBase) -> None:
    result = kb.materialize(SOURCES)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "drop .jsonl/.csv/.json QA files" in str(failure.event_specific_data)
