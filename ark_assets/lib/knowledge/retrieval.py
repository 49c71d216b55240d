"""The retrieval API used by synthesis, the agent loop and evaluation.

``Retriever.search(query, k)`` returns ``Hit``s, best first, higher score = more similar.
``KnowledgeRetriever`` is the one implementation: a dense search (the Chroma collection, see
``store.ChromaSearch``), optionally fused with BM25 (``lexical.Bm25Index``), then optionally
MedArk's post-filter.

MedArk's filter (construction-sft, ``do_query``): after ``similarity_search(query, k=2)`` it keeps
a document only when at least 3 characters of its question occur in the query, counting the
question's characters with repetition (``sum(ch in query for ch in question) >= 3``). It runs on
the top k, so a search may return fewer than k hits; ``shares_chars`` is that test, exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

MEDARK_MIN_SHARED = 3
# Reciprocal-rank-fusion constant from Cormack et al. (2009): damps the weight of the top ranks
# so neither list dominates.
RRF_K = 60


@dataclass(frozen=True)
class Hit:
    doc_id: str
    question: str
    answer: str
    source: str | None
    score: float  # higher = more similar


class Retriever(Protocol):
    def search(self, query: str, k: int = 2) -> list[Hit]: ...


DenseSearch = Callable[[str, int], list[Hit]]  # query, n -> best n hits, best first


class LexicalSearch(Protocol):
    def search(self, query: str, n: int) -> list[Hit]: ...


def shares_chars(query: str, hit: Hit, min_shared: int = MEDARK_MIN_SHARED) -> bool:
    """MedArk's post-filter: ≥ ``min_shared`` characters of the hit's question occur in the query.

    Characters are counted with repetition over the question, as MedArk does; in English almost
    every pair passes, which is why the filter is a Chinese-knowledge-base heuristic.
    """
    present = set(query)
    return sum(1 for ch in hit.question if ch in present) >= min_shared


class KnowledgeRetriever:
    """Dense (or hybrid) search over the knowledge base with MedArk's optional post-filter.

    ``medark_filter`` is on by default, as in the Ark loop; evaluation turns it off to measure
    the ranking itself. With ``lexical`` set, the dense and BM25 rankings of ``candidates`` hits
    each are fused by reciprocal rank and the fused score is returned.
    """

    def __init__(
        self,
        dense: DenseSearch,
        *,
        medark_filter: bool = True,
        min_shared: int = MEDARK_MIN_SHARED,
        lexical: LexicalSearch | None = None,
        candidates: int = 20,
    ) -> None:
        self._dense = dense
        self.medark_filter = medark_filter
        self.min_shared = min_shared
        self._lexical = lexical
        self.candidates = candidates

    @property
    def hybrid(self) -> bool:
        return self._lexical is not None

    def search(self, query: str, k: int = 2) -> list[Hit]:
        if not query.strip() or k <= 0:
            return []
        if self._lexical is None:
            hits = self._dense(query, k)
        else:
            pool = max(k, self.candidates)
            hits = fuse([self._dense(query, pool), self._lexical.search(query, pool)], k)
        if self.medark_filter:
            hits = [hit for hit in hits if shares_chars(query, hit, self.min_shared)]
        return hits


def fuse(rankings: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """Reciprocal rank fusion: score = Σ 1 / (RRF_K + rank) over the rankings that hold a hit."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.doc_id] = scores.get(hit.doc_id, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(hit.doc_id, hit)
    best = sorted(scores, key=lambda doc: (-scores[doc], doc))[:k]
    return [
        Hit(first[d].doc_id, first[d].question, first[d].answer, first[d].source, scores[d])
        for d in best
    ]
