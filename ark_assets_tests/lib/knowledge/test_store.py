"""The Chroma collection: incremental, idempotent sync; one collection per embedder."""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import chromadb
import numpy as np
import pytest

from ark_assets.lib.knowledge import store
from ark_assets.lib.knowledge.embedders import HashingEmbedder
from ark_assets.lib.knowledge.records import KbLimits, QaDocument, SourceFile, build_kb
from ark_assets.lib.knowledge.store import (
    EmbedderMismatchError,
    KnowledgeIndex,
    chroma_settings,
    collection_name,
    persistent_client,
    throwaway_index,
)
from ark_assets_tests.conftest import SAMPLES


@dataclass
class CountingEmbedder:
    """A hashing embedder that records every text it embeds as a document."""

    inner: HashingEmbedder = field(default_factory=lambda: HashingEmbedder(dimension=64))
    embedded: list[str] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return self.inner.identity

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)


@pytest.fixture(scope="module")
def documents() -> list[QaDocument]:
    lines = (SAMPLES / "kb_qa_sample.jsonl").read_bytes().splitlines(keepends=True)[:60]
    return build_kb([SourceFile("kb.jsonl", b"".join(lines), "0" * 64)], KbLimits()).documents


def test_sync_embeds_only_new_documents_and_deletes_removed_ones(
    tmp_path: Path, documents: list[QaDocument]
) -> None:
    embedder = CountingEmbedder()
    index = KnowledgeIndex(persistent_client(tmp_path), embedder, add_batch=20)  # several adds
    first = index.sync(documents[:40], batch_size=16)
    assert (first.added, first.removed, first.kept, first.count) == (40, 0, 0, 40)
    assert len(embedder.embedded) == 40

    embedder.embedded.clear()
    relabelled = replace(documents[5], source="another file")
    wanted = [*documents[10:40], relabelled, *documents[40:60]]
    second = index.sync(wanted, batch_size=16)
    assert (second.added, second.removed, second.kept, second.relabelled) == (20, 9, 31, 1)
    assert embedder.embedded == [d.question for d in documents[40:60]]
    assert set(index.stored_metadata()) == {d.doc_id for d in wanted}
    assert index.stored_metadata()[relabelled.doc_id]["source"] == "another file"

    embedder.embedded.clear()
    again = index.sync(wanted)
    assert (again.added, again.removed, again.relabelled, again.count) == (0, 0, 0, 51)
    assert embedder.embedded == []


def test_index_persists_and_stores_medark_layout(
    tmp_path: Path, documents: list[QaDocument]
) -> None:
    embedder = HashingEmbedder(dimension=64)
    KnowledgeIndex(persistent_client(tmp_path), embedder).sync(documents[:10])
    reopened = KnowledgeIndex(chromadb.PersistentClient(str(tmp_path), chroma_settings()), embedder)
    assert reopened.count() == 10 and reopened.dimensions() == {64: 10}
    doc = documents[3]
    record = reopened.collection.get(ids=[doc.doc_id], include=["documents", "metadatas"])
    assert record["documents"] == [doc.question]
    assert record["metadatas"] == [
        {"question": doc.question, "answer": doc.answer, "doc_id": doc.doc_id, "source": doc.source}
    ]
    (hit, *_) = reopened.search(doc.question, 3)
    assert hit.doc_id == doc.doc_id and hit.answer == doc.answer
    assert hit.score == pytest.approx(1.0, abs=1e-4)


def test_hnsw_settings_shape_a_new_collection_and_an_existing_one_keeps_its_own(
    tmp_path: Path, documents: list[QaDocument]
) -> None:
    embedder = HashingEmbedder(dimension=64)
    default = KnowledgeIndex(persistent_client(tmp_path / "default"), embedder)
    hnsw = default.collection.configuration["hnsw"]
    assert hnsw is not None
    assert {k: hnsw[k] for k in store.HNSW_DEFAULTS} == store.HNSW_DEFAULTS  # type: ignore[literal-required]

    built = KnowledgeIndex(persistent_client(tmp_path / "kb"), embedder, {"max_neighbors": 8})
    built.sync(documents[:20])
    reopened = KnowledgeIndex(persistent_client(tmp_path / "kb"), embedder, {"max_neighbors": 32})
    for index in (built, reopened):
        assert (index.collection.configuration["hnsw"] or {}).get("max_neighbors") == 8
    assert reopened.count() == 20
    assert reopened.search(documents[4].question, 1)[0].doc_id == documents[4].doc_id


def test_each_embedder_gets_its_own_collection(tmp_path: Path, documents: list[QaDocument]) -> None:
    client = persistent_client(tmp_path)
    small = KnowledgeIndex(client, HashingEmbedder(dimension=64))
    large = KnowledgeIndex(client, HashingEmbedder(dimension=128))
    small.sync(documents[:5])
    large.sync(documents[:7])
    assert small.name != large.name
    assert {c.name for c in client.list_collections()} == {small.name, large.name}
    assert (small.count(), large.count()) == (5, 7)
    assert large.dimensions() == {128: 7}


def test_a_collection_of_another_embedder_is_refused(tmp_path: Path) -> None:
    client = persistent_client(tmp_path)
    embedder = HashingEmbedder(dimension=64)
    client.create_collection(
        collection_name(embedder.identity), metadata={"embedder": "someone-else"}
    )
    with pytest.raises(EmbedderMismatchError, match="someone-else"):
        KnowledgeIndex(client, embedder)


def test_collection_names_are_valid_for_chroma() -> None:
    for identity in ("hashing-v1-d1024-n123", "openai-text-embedding-3-small-api.openai.com", "x"):
        name = collection_name(identity)
        assert 3 <= len(name) <= 512 and name[0].isalnum() and name[-1].isalnum()
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
    assert collection_name("a b") != collection_name("a-b")


def test_throwaway_index_leaves_nothing_behind(documents: list[QaDocument]) -> None:
    embedder = HashingEmbedder(dimension=32)
    with throwaway_index(embedder, documents[:8]) as index:
        assert index.count() == 8
        client = index.client
    assert index.name not in {c.name for c in client.list_collections()}
