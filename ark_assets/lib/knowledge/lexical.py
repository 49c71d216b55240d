"""BM25 over the knowledge base (bm25s), with jieba word segmentation for Chinese.

Used by the hybrid retrieval mode: exact terms (drug names, numbers, rare symptoms) that an
embedding blurs are what BM25 finds. Each document is indexed as its question followed by its
answer, so a query phrased like the knowledge still meets its document.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import bm25s
import jieba
import numpy as np

from ark_assets.lib.knowledge.retrieval import Hit
from ark_assets.lib.knowledge.text import normalise

jieba.setLogLevel(logging.WARNING)

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """jieba words for Han runs, lower-cased words for Latin text; punctuation dropped."""
    text = normalise(text).lower()
    tokens: list[str] = []
    position = 0
    for run in _HAN_RUN.finditer(text):
        tokens.extend(_WORD.findall(text[position : run.start()]))
        tokens.extend(word for word in jieba.lcut(run.group()) if word.strip())
        position = run.end()
    tokens.extend(_WORD.findall(text[position:]))
    return tokens


class Bm25Index:
    """An in-memory BM25 index of QA documents; ``search`` returns ``Hit``s scored by BM25."""

    def __init__(self, hits: Sequence[Hit]) -> None:
        self._hits = list(hits)
        self._model = bm25s.BM25()
        if self._hits:
            corpus = [tokenize(f"{hit.question} {hit.answer}") for hit in self._hits]
            self._model.index(corpus, show_progress=False)

    def __len__(self) -> int:
        return len(self._hits)

    def search(self, query: str, n: int) -> list[Hit]:
        tokens = tokenize(query)
        if not self._hits or not tokens or n <= 0:
            return []
        found, scores = self._model.retrieve(
            [tokens], k=min(n, len(self._hits)), show_progress=False, n_threads=1
        )
        return [
            Hit(hit.doc_id, hit.question, hit.answer, hit.source, float(score))
            for index, score in zip(np.ravel(found), np.ravel(scores), strict=True)
            if score > 0
            for hit in (self._hits[int(index)],)
        ]
