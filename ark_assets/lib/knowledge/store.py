"""The Chroma collection that holds the knowledge base, kept in step with the documents.

One document per QA pair, MedArk's layout: the document text is the question (what is
embedded), the metadata carries ``{question, answer, source, doc_id}``, the id is ``doc_id``.
Vectors always come from our own ``Embedder`` and are passed to Chroma explicitly; collections
are created with no embedding function, so Chroma never reaches for its default model (which
it would download at run time).

The collection name encodes the embedder identity, so vectors of two embedders never share a
collection; switching embedders builds a new collection beside the old one. ``sync`` is
incremental and idempotent: it diffs the ids the collection actually holds against the wanted
documents, deletes what is gone, re-labels what moved, embeds only what is new. An interrupted
sync is completed by the next one, which re-embeds at most the last uncommitted add batch.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Include
from chromadb.config import Settings

from ark_assets.lib.knowledge.embedders import Embedder, Progress
from ark_assets.lib.knowledge.lexical import Bm25Index
from ark_assets.lib.knowledge.records import QaDocument
from ark_assets.lib.knowledge.retrieval import MEDARK_MIN_SHARED, Hit, KnowledgeRetriever

LAYOUT = "medark-qa-v1"  # document = question; metadata {question, answer, source?, doc_id}
_PAGE = 5000  # ids per get/delete call: Chroma's max batch is ~5.4k
# Documents per Chroma add: one call per 1,024 inserts 2.6x faster than one per 64 (4k
# documents, 1,024 dims, 2 cores); at most that many embedded documents wait unsaved.
_ADD_BATCH = 1024
# The HNSW index of a new collection (Chroma's configuration; an existing collection keeps the
# one it was built with): cosine, and Chroma's own values for the rest. Measured by
# ``python -m ark_assets.bench.kb_insert`` (20k pairs, 2 cores; docs/benchmarks.md): the
# insert is not HNSW-bound — ef_construction 50 saves 10% for 4 points of recall@2, 8 or 32
# neighbours and a 1,000 insert buffer change nothing or cost, persisting every 20,000 instead
# of 1,000 is 2.5x slower, a 4,096 add batch the same as 1,024.
HNSW_DEFAULTS: dict[str, Any] = {"space": "cosine"}


def chroma_settings() -> Settings:
    # Telemetry would try to reach the internet on every client start.
    return Settings(anonymized_telemetry=False)


def persistent_client(path: Path) -> ClientAPI:
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings())


def http_client(host: str, port: int, ssl: bool = False) -> ClientAPI:
    return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=chroma_settings())


def collection_name(identity: str) -> str:
    """``kb-<readable identity>-<8 hex of its sha256>``: Chroma's 3–512 ``[a-zA-Z0-9._-]``."""
    readable = re.sub(r"[^a-zA-Z0-9]+", "-", identity).strip("-")[:48]
    return f"kb-{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def metadata_of(doc: QaDocument) -> dict[str, str]:
    """Chroma metadata of a document (Chroma stores no nulls: a missing source is omitted)."""
    meta = {"question": doc.question, "answer": doc.answer, "doc_id": doc.doc_id}
    if doc.source:
        meta["source"] = doc.source
    return meta


def hit_of(meta: Any, score: float) -> Hit:
    return Hit(
        doc_id=str(meta["doc_id"]),
        question=str(meta["question"]),
        answer=str(meta["answer"]),
        source=str(meta["source"]) if meta.get("source") else None,
        score=score,
    )


@dataclass(frozen=True)
class SyncStats:
    added: int
    removed: int
    kept: int
    relabelled: int  # kept documents whose metadata (source) changed: updated, not re-embedded
    count: int  # documents in the collection afterwards
    seconds: float
    embed_seconds: float

    @property
    def docs_per_s(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0


class EmbedderMismatchError(RuntimeError):
    pass


class KnowledgeIndex:
    """The knowledge-base collection of one embedder on one Chroma client."""

    def __init__(
        self,
        client: ClientAPI,
        embedder: Embedder,
        hnsw: dict[str, Any] | None = None,
        add_batch: int = _ADD_BATCH,
    ) -> None:
        """``hnsw`` overrides ``HNSW_DEFAULTS`` for a collection created now (Chroma's
        ``HNSWConfiguration`` keys); ``add_batch``: documents per Chroma add."""
        self.client = client
        self.embedder = embedder
        self.name = collection_name(embedder.identity)
        self.add_batch = add_batch
        self.collection: Collection = client.get_or_create_collection(
            self.name,
            embedding_function=None,
            configuration={"hnsw": {**HNSW_DEFAULTS, **(hnsw or {})}},  # type: ignore[arg-type]
            metadata={"embedder": embedder.identity, "dim": embedder.dim, "layout": LAYOUT},
        )
        held = (self.collection.metadata or {}).get("embedder")
        if held != embedder.identity:
            raise EmbedderMismatchError(
                f"collection {self.name} holds vectors of {held!r}, not {embedder.identity!r}; "
                "delete it or pick the embedder it was built with"
            )
        self._lexical: Bm25Index | None = None

    def count(self) -> int:
        return self.collection.count()

    def pages(self, include: Include) -> Iterator[dict[str, Any]]:
        """The stored records ``_PAGE`` at a time (ids always included)."""
        total = self.count()
        for offset in range(0, total, _PAGE):
            yield dict(self.collection.get(include=include, limit=_PAGE, offset=offset))

    def stored_metadata(self) -> dict[str, dict[str, Any]]:
        stored: dict[str, dict[str, Any]] = {}
        for page in self.pages(["metadatas"]):
            stored.update(zip(page["ids"], map(dict, page["metadatas"]), strict=True))
        return stored

    def sync(
        self,
        documents: Sequence[QaDocument],
        batch_size: int = 256,
        on_batch: Progress | None = None,
    ) -> SyncStats:
        """Make the collection hold exactly ``documents``; embed only the new ones."""
        started = time.perf_counter()
        wanted = {doc.doc_id: doc for doc in documents}
        stored = self.stored_metadata()
        removed = [doc_id for doc_id in stored if doc_id not in wanted]
        new = [doc for doc_id, doc in wanted.items() if doc_id not in stored]
        moved = [
            doc
            for doc_id, doc in wanted.items()
            if doc_id in stored and stored[doc_id] != metadata_of(doc)
        ]
        for chunk in _chunks(removed, _PAGE):
            self.collection.delete(ids=list(chunk))
        for chunk in _chunks(moved, _PAGE):
            self.collection.update(
                ids=[d.doc_id for d in chunk],
                metadatas=[metadata_of(d) for d in chunk],
            )
        embed_seconds = 0.0
        pending: list[QaDocument] = []
        vectors: list[np.ndarray] = []
        for start in range(0, len(new), batch_size):
            batch = new[start : start + batch_size]
            tick = time.perf_counter()
            vectors.append(self.embedder.embed_documents([d.question for d in batch]))
            embed_seconds += time.perf_counter() - tick
            pending.extend(batch)
            if len(pending) >= self.add_batch or start + batch_size >= len(new):
                self._add(pending, np.concatenate(vectors))
                pending, vectors = [], []
            if on_batch is not None:
                on_batch(start + len(batch), len(new))
        self._lexical = None
        return SyncStats(
            added=len(new),
            removed=len(removed),
            kept=len(wanted) - len(new),
            relabelled=len(moved),
            count=self.count(),
            seconds=time.perf_counter() - started,
            embed_seconds=embed_seconds,
        )

    def _add(self, documents: Sequence[QaDocument], vectors: np.ndarray) -> None:
        self.collection.add(
            ids=[d.doc_id for d in documents],
            embeddings=vectors,
            documents=[d.question for d in documents],
            metadatas=[metadata_of(d) for d in documents],
        )

    def search(self, query: str, n: int) -> list[Hit]:
        """The ``n`` nearest documents by cosine similarity (score = 1 - cosine distance)."""
        if n <= 0:
            return []
        found = self.collection.query(
            query_embeddings=self.embedder.embed_queries([query]),
            n_results=n,
            include=["metadatas", "distances"],
        )
        metas = (found["metadatas"] or [[]])[0]
        distances = (found["distances"] or [[]])[0]
        return [hit_of(m, 1.0 - float(d)) for m, d in zip(metas, distances, strict=True)]

    def lexical(self) -> Bm25Index:
        """A BM25 index of the stored documents (built on first use, dropped by ``sync``)."""
        if self._lexical is None:
            self._lexical = Bm25Index(
                [hit_of(meta, 0.0) for meta in self.stored_metadata().values()]
            )
        return self._lexical

    def retriever(
        self,
        *,
        medark_filter: bool = True,
        hybrid: bool = False,
        min_shared: int = MEDARK_MIN_SHARED,
    ) -> KnowledgeRetriever:
        return KnowledgeRetriever(
            self.search,
            medark_filter=medark_filter,
            min_shared=min_shared,
            lexical=self.lexical() if hybrid else None,
        )

    def dimensions(self) -> dict[int, int]:
        """``{embedding length: documents}`` over every stored vector (one key when healthy)."""
        counts: dict[int, int] = {}
        for page in self.pages(["embeddings"]):
            embeddings = page["embeddings"]
            for length in (np.asarray(e).shape[-1] for e in embeddings):
                counts[int(length)] = counts.get(int(length), 0) + 1
        return counts


@contextmanager
def throwaway_index(
    embedder: Embedder, documents: Sequence[QaDocument], on_batch: Progress | None = None
) -> Iterator[KnowledgeIndex]:
    """An in-memory index of ``documents`` (evaluation of other embedders), dropped afterwards."""
    index = KnowledgeIndex(chromadb.EphemeralClient(settings=chroma_settings()), embedder)
    try:
        index.sync(documents, on_batch=on_batch)
        yield index
    finally:
        index.client.delete_collection(index.name)


def content_digest(identity: str, doc_ids: Iterable[str]) -> str:
    """Data version of an index: the embedder identity and the sorted document ids."""
    digest = hashlib.sha256(identity.encode())
    for doc_id in sorted(doc_ids):
        digest.update(doc_id.encode())
    return digest.hexdigest()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
