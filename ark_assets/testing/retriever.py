"""An in-memory stand-in for the knowledge base's ``Retriever`` (``lib.knowledge.retrieval``).

``MemoryRetriever`` ranks QA pairs by shared characters and bigrams without any embedding:
unit tests and the teacher benchmark use it, so they measure the loop and the teacher, not a
vector store.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from ark_assets.lib.knowledge.retrieval import Hit

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]", re.IGNORECASE)
_PUNCTUATION = set("，。？！、；：“”‘’（）,.?!;:'\"()…~")


def _grams(text: str) -> set[str]:
    tokens = [t.lower() for t in _WORD.findall(text) if t not in _PUNCTUATION]
    return set(tokens) | {a + b for a, b in itertools.pairwise(tokens)}


class MemoryRetriever:
    """Ranks QA pairs by the IDF-weighted unigrams and bigrams their question shares with the
    query (an inverted index; characters for Chinese, words for English)."""

    def __init__(self, pairs: Iterable[Mapping[str, str | None]]) -> None:
        self._docs: list[Hit] = []
        postings: dict[str, list[int]] = {}
        for pair in pairs:
            question, answer = str(pair["question"]), str(pair["answer"])
            doc_id = hashlib.sha256(f"{question}\x1f{answer}".encode()).hexdigest()[:16]
            for gram in _grams(question):
                postings.setdefault(gram, []).append(len(self._docs))
            self._docs.append(Hit(doc_id, question, answer, pair.get("source"), 0.0))
        n = len(self._docs)
        # Grams in more than a tenth of the questions (的, 是, 怎么) rank nothing, cost most.
        self._index = {
            gram: (math.log((n + 1) / len(docs)), docs)
            for gram, docs in postings.items()
            if len(docs) <= max(1, n // 10)
        }

    def search(self, query: str, k: int = 2) -> list[Hit]:
        scores: dict[int, float] = {}
        for gram in _grams(query):
            weight, docs = self._index.get(gram, (0.0, []))
            for position in docs:
                scores[position] = scores.get(position, 0.0) + weight
        ranked = heapq.nsmallest(k, scores.items(), key=lambda item: (-item[1], item[0]))
        return [replace(self._docs[position], score=round(score, 4)) for position, score in ranked]
