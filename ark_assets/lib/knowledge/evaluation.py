"""Retrieval quality of the knowledge base: recall@1, recall@5 and MRR on derived queries.

A seeded sample of indexed documents is *held out* as evaluation targets; each yields three
queries whose right answer is that document:

- ``question``: the question itself (an index must at least find its own documents);
- ``perturbed``: the question retyped by another patient: everyday synonyms swapped in
  (``孩子``→``小孩``, ``怎么办``→``如何处理``, …), a colloquial opener, punctuation removed,
  ~10% of characters dropped and two neighbours swapped;
- ``answer``: the longest sentence of the answer (a query phrased like the knowledge, not
  like the question, which is what an LLM's retrieval request often looks like).
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ark_assets.lib.knowledge.records import QaDocument
from ark_assets.lib.knowledge.retrieval import KnowledgeRetriever
from ark_assets.lib.knowledge.store import KnowledgeIndex
from ark_assets.lib.knowledge.text import is_han

KINDS = ("question", "perturbed", "answer")
MRR_CUTOFF = 10
_OPENERS_ZH = ("医生你好，", "请问一下，", "我想咨询：", "")
_OPENERS_EN = ("Doctor, ", "Quick question: ", "Hi, ", "")
# Everyday rewordings a second patient might use; applied wherever they occur.
_SYNONYMS_ZH = (
    ("怎么办", "如何处理"),
    ("怎么回事", "是什么原因"),
    ("孩子", "小孩"),
    ("宝宝", "婴儿"),
    ("医生", "大夫"),
    ("严重吗", "要紧吗"),
    ("可以", "能"),
    ("治疗", "医治"),
    ("吃什么药", "用什么药"),
    ("引起", "导致"),
    ("症状", "表现"),
    ("最近", "这段时间"),
)
_SYNONYMS_EN = (
    ("doctor", "physician"),
    ("child", "kid"),
    ("pain", "ache"),
    ("medicine", "medication"),
    ("should i", "do i need to"),
)
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=\.)\s")
_PUNCT = re.compile(r"[^\w\s]")
_MIN_SENTENCE_CHARS = 6

Search = Callable[[str, int], Sequence[str]]  # query, k -> ranked doc ids


@dataclass(frozen=True)
class EvalQuery:
    doc_id: str
    kind: str
    text: str


@dataclass(frozen=True)
class Scores:
    queries: int
    recall_at_1: float
    recall_at_5: float
    mrr: float
    recall_at_5_by_kind: dict[str, float]
    queries_per_s: float


def eval_queries(documents: Sequence[QaDocument], n_documents: int, seed: int) -> list[EvalQuery]:
    """Three queries for each of ``n_documents`` held-out documents, chosen with ``seed``."""
    rng = random.Random(seed)
    ordered = sorted(documents, key=lambda d: d.doc_id)
    held_out = rng.sample(ordered, min(n_documents, len(ordered)))
    queries: list[EvalQuery] = []
    for doc in held_out:
        queries.append(EvalQuery(doc.doc_id, "question", doc.question))
        queries.append(EvalQuery(doc.doc_id, "perturbed", perturb(doc.question, rng)))
        queries.append(EvalQuery(doc.doc_id, "answer", answer_sentence(doc.answer)))
    return queries


def perturb(question: str, rng: random.Random) -> str:
    """A retyped question: synonyms, an opener, no punctuation, ~10% of characters dropped,
    one swap."""
    chinese = sum(map(is_han, question)) * 2 >= len(question)
    opener = rng.choice(_OPENERS_ZH if chinese else _OPENERS_EN)
    text = question if chinese else question.lower()
    for word, synonym in _SYNONYMS_ZH if chinese else _SYNONYMS_EN:
        text = text.replace(word, synonym)
    chars = list(_PUNCT.sub("", text))
    for _ in range(max(1, len(chars) // 10)):
        if len(chars) > 4:
            del chars[rng.randrange(len(chars))]
    if len(chars) > 3:
        i = rng.randrange(len(chars) - 1)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return opener + "".join(chars)


def answer_sentence(answer: str) -> str:
    """The longest sentence of the answer (the whole answer when it is one short sentence)."""
    sentences = [s.strip() for s in _SENTENCE_END.split(answer) if s and s.strip()]
    long_enough = [s for s in sentences if len(s) >= _MIN_SENTENCE_CHARS]
    return max(long_enough or [answer], key=len)


def score(search: Search, queries: Sequence[EvalQuery]) -> Scores:
    """Rank every query's document with ``search`` (top ``MRR_CUTOFF``) and summarise."""
    ranks: list[int | None] = []
    started = time.perf_counter()
    for query in queries:
        ranked = list(search(query.text, MRR_CUTOFF))
        ranks.append(ranked.index(query.doc_id) + 1 if query.doc_id in ranked else None)
    elapsed = time.perf_counter() - started
    n = len(queries)

    def recall(k: int, kind: str | None = None) -> float:
        picked = [r for q, r in zip(queries, ranks, strict=True) if kind in (None, q.kind)]
        return sum(1 for r in picked if r is not None and r <= k) / len(picked) if picked else 0.0

    return Scores(
        queries=n,
        recall_at_1=recall(1),
        recall_at_5=recall(5),
        mrr=sum(1 / r for r in ranks if r is not None) / n if n else 0.0,
        recall_at_5_by_kind={kind: recall(5, kind) for kind in KINDS},
        queries_per_s=n / elapsed if elapsed > 0 else 0.0,
    )


def markdown_report(rows: Sequence[dict[str, object]], held_out: int, total: int, seed: int) -> str:
    """The evaluation table as markdown, with how the queries were made."""
    header = (
        "| embedder | mode | queries | recall@1 | recall@5 | MRR | r@5 question | "
        "r@5 perturbed | r@5 answer | queries/s |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['embedder']} | {r['mode']} | {r['queries']} | {r['recall_at_1']:.3f} | "
        f"{r['recall_at_5']:.3f} | {r['mrr']:.3f} | {r['recall_at_5_question']:.3f} | "
        f"{r['recall_at_5_perturbed']:.3f} | {r['recall_at_5_answer']:.3f} | "
        f"{r['queries_per_s']:.0f} |"
        for r in rows
    ]
    return (
        "# Knowledge-base retrieval report\n\n"
        f"{held_out} of {total} documents held out (seed {seed}); each gives three queries "
        "(the question, a perturbed question, the longest sentence of its answer) whose "
        f"right answer is that document. MRR is cut at rank {MRR_CUTOFF}; the MedArk "
        "≥3-shared-characters filter is off (it changes how many hits are returned, not their "
        "order).\n\n" + header + "\n".join(lines) + "\n"
    )


def _ranked_ids(retriever: KnowledgeRetriever, query: str, k: int) -> list[str]:
    return [hit.doc_id for hit in retriever.search(query, k)]


def evaluate_index(index: KnowledgeIndex, queries: Sequence[EvalQuery], hybrid: bool) -> list[dict]:
    """One row per retrieval mode (dense, and hybrid when asked) in ``KB_RETRIEVAL_EVAL`` shape."""
    rows = []
    for mode in ("dense", "hybrid") if hybrid else ("dense",):
        retriever = index.retriever(medark_filter=False, hybrid=mode == "hybrid")
        scores = score(functools.partial(_ranked_ids, retriever), queries)
        rows.append(
            {
                "embedder": index.embedder.identity,
                "mode": mode,
                "queries": scores.queries,
                "recall_at_1": scores.recall_at_1,
                "recall_at_5": scores.recall_at_5,
                "mrr": scores.mrr,
                **{f"recall_at_5_{k}": v for k, v in scores.recall_at_5_by_kind.items()},
                "queries_per_s": scores.queries_per_s,
            }
        )
    return rows
