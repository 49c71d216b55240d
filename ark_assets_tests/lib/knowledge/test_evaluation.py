"""Retrieval evaluation: derived queries, recall@k and MRR, the report."""

import random

import pytest

from ark_assets.lib.knowledge.evaluation import (
    KINDS,
    EvalQuery,
    answer_sentence,
    eval_queries,
    markdown_report,
    perturb,
    score,
)
from ark_assets.lib.knowledge.records import QaDocument


def _doc(i: int) -> QaDocument:
    return QaDocument(
        doc_id=f"{i:064x}",
        question=f"第{i}个问题：孩子发烧怎么办？",
        answer=f"你好。这是第{i}个回答，建议多喝水并及时就医。祝好！",
        source=None,
        language="zh",
        source_file="kb.jsonl",
        file_sha256="0" * 64,
        record_index=i,
        source_format="jsonl",
    )


DOCS = [_doc(i) for i in range(30)]


def test_eval_queries_are_seeded_and_three_per_held_out_document() -> None:
    queries = eval_queries(DOCS, 10, seed=1)
    assert queries == eval_queries(list(reversed(DOCS)), 10, seed=1)
    assert queries != eval_queries(DOCS, 10, seed=2)
    assert len(queries) == 30 and len({q.doc_id for q in queries}) == 10
    assert [q.kind for q in queries[:3]] == list(KINDS)
    assert len(eval_queries(DOCS, 100, seed=1)) == 90


def test_perturb_changes_the_question_but_keeps_most_of_it() -> None:
    question = "我家孩子最近总是咳嗽，晚上更严重，是什么原因引起的？"
    perturbed = perturb(question, random.Random(0))
    assert perturbed != question and "，" not in perturbed
    assert "小孩" in perturbed or "导致" in perturbed or "这段时间" in perturbed
    assert len(set(perturbed) & set(question)) >= len(set(question)) // 2


def test_answer_sentence_is_the_longest_sentence() -> None:
    assert (
        answer_sentence("你好。多喝水并注意休息，必要时就医。祝好！")
        == "多喝水并注意休息，必要时就医。"
    )
    assert answer_sentence("Rest. Drink plenty of water every day. Bye.") == (
        "Drink plenty of water every day."
    )
    assert answer_sentence("好") == "好"


def test_score_recall_and_mrr() -> None:
    queries = [
        EvalQuery("a", "question", "qa"),
        EvalQuery("b", "perturbed", "qb"),
        EvalQuery("c", "answer", "qc"),
        EvalQuery("d", "answer", "qd"),
    ]
    rankings = {
        "qa": ["a", "x"],  # rank 1
        "qb": ["x", "y", "b"],  # rank 3
        "qc": ["x"] * 5 + ["c"],  # rank 6
        "qd": ["x"],  # not found
    }
    scores = score(lambda query, k: rankings[query][:k], queries)
    assert scores.queries == 4
    assert scores.recall_at_1 == 0.25 and scores.recall_at_5 == 0.5
    assert scores.mrr == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)
    assert scores.recall_at_5_by_kind == {"question": 1.0, "perturbed": 1.0, "answer": 0.0}


def test_markdown_report_has_one_row_per_result() -> None:
    row = {
        "embedder": "hashing-v1",
        "mode": "dense",
        "queries": 30,
        "recall_at_1": 0.5,
        "recall_at_5": 0.75,
        "mrr": 0.6,
        "recall_at_5_question": 1.0,
        "recall_at_5_perturbed": 0.9,
        "recall_at_5_answer": 0.35,
        "queries_per_s": 120.0,
    }
    report = markdown_report([row, {**row, "mode": "hybrid"}], held_out=10, total=30, seed=1)
    assert "| hashing-v1 | dense | 30 | 0.500 | 0.750 | 0.600 |" in report
    assert "| hashing-v1 | hybrid |" in report and "10 of 30 documents" in report
