"""Knowledge-base insert: what Chroma's add batch and HNSW parameters cost and buy.

    python -m ark_assets.bench.kb_insert [--docs 20000] [--queries 500]

``kb_index`` with the hashing embedder spends nearly all its time inside Chroma (the knowledge
bench: embed ~4 s, sync ~55 s for 20k pairs). This bench holds the vectors fixed (the hashing
embedder's, computed once, so no row pays for encoding) and inserts the same upsampled QA
pairs through ``KnowledgeIndex.sync`` — the code ``kb_index`` calls — into a fresh embedded
store per setting, one setting changed from the first row at a time: the add batch (documents
per ``collection.add``), HNSW's insert buffer and persist threshold (``batch_size``,
``sync_threshold``), graph degree (``max_neighbors``) and build beam (``ef_construction``).
For each: insert seconds, documents/s, recall@2 of the index against the exact cosine top 2
over ``--queries`` perturbed questions (what the settings cost in quality), query p50, and the
store's size on disk.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ark_assets.bench.knowledge import SEED, _documents, upsample
from ark_assets.bench.report import machine_description, write_section
from ark_assets.lib.knowledge.embedders import HashingEmbedder
from ark_assets.lib.knowledge.evaluation import perturb
from ark_assets.lib.knowledge.store import _ADD_BATCH, HNSW_DEFAULTS, KnowledgeIndex
from ark_assets.lib.knowledge.store import persistent_client as open_store

COMMAND = "python -m ark_assets.bench.kb_insert"
# row -> (HNSW overrides, add batch); the first row is the store's defaults.
SETTINGS: dict[str, tuple[dict[str, Any], int]] = {
    "defaults": ({}, _ADD_BATCH),
    "add batch 4096": ({}, 4096),
    "insert buffer 1000": ({"batch_size": 1000}, _ADD_BATCH),
    "persist every 20000": ({"sync_threshold": 20_000}, _ADD_BATCH),
    "buffer 1000 + persist 20000": ({"batch_size": 1000, "sync_threshold": 20_000}, _ADD_BATCH),
    "ef_construction 50": ({"ef_construction": 50}, _ADD_BATCH),
    "max_neighbors 8": ({"max_neighbors": 8}, _ADD_BATCH),
    "max_neighbors 32": ({"max_neighbors": 32}, _ADD_BATCH),
}


class FixedVectors:
    """The hashing embedder's identity and vectors, looked up instead of computed."""

    def __init__(self, embedder: HashingEmbedder, texts: Sequence[str]) -> None:
        self._embedder = embedder
        self._vectors = dict(zip(texts, embedder.embed_documents(list(texts)), strict=True))

    @property
    def identity(self) -> str:
        return self._embedder.identity

    @property
    def dim(self) -> int:
        return self._embedder.dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder.embed_queries(texts)


def measure(
    name: str, docs: list[Any], vectors: FixedVectors, queries: np.ndarray, exact: np.ndarray
) -> dict[str, Any]:
    overrides, add_batch = SETTINGS[name]
    with tempfile.TemporaryDirectory(prefix="ark-bench-kb-") as tmp:
        index = KnowledgeIndex(open_store(Path(tmp)), vectors, overrides, add_batch)  # type: ignore[arg-type]
        stats = index.sync(docs, batch_size=256)
        latencies, found = [], []
        for vector in queries:
            tick = time.perf_counter()
            result = index.collection.query(query_embeddings=[vector], n_results=2)
            latencies.append(time.perf_counter() - tick)
            found.append(result["ids"][0])
        disk = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    ids = [d.doc_id for d in docs]
    recall = statistics.mean(
        len(set(hits) & {ids[i] for i in truth}) / 2
        for hits, truth in zip(found, exact, strict=True)
    )
    insert_s = stats.seconds - stats.embed_seconds
    return {
        "name": name,
        "insert_s": insert_s,
        "docs_s": len(docs) / insert_s,
        "recall": recall,
        "p50_ms": statistics.median(latencies) * 1000,
        "disk_mb": disk / 2**20,
    }


def render(results: list[dict[str, Any]], args: argparse.Namespace, embed_s: float) -> str:
    first = results[0]
    rows = "\n".join(
        f"| {r['name']} | {r['insert_s']:.1f} | {r['docs_s']:,.0f} | "
        f"{first['insert_s'] / r['insert_s']:.2f}× | {r['recall']:.3f} | {r['p50_ms']:.2f} | "
        f"{r['disk_mb']:.0f} |"
        for r in results
    )
    return f"""## Knowledge base: Chroma insert settings (add batch, HNSW)

Command: `{COMMAND} --docs {args.docs} --queries {args.queries}` (part of `make bench`)
Machine: {machine_description()}; Python {platform.python_version()}

{args.docs:,} QA pairs (the knowledge bench's seeded upsample), hashing embedder vectors computed
once ({embed_s:.1f} s for all of them, in no row below), inserted by `KnowledgeIndex.sync` into
a fresh embedded store per row; each row changes one setting from the first (the store's
defaults: {HNSW_DEFAULTS}, Chroma's own for the rest — `max_neighbors` 16, `ef_construction`
100, insert buffer `batch_size` 100, `sync_threshold` 1,000; add batch {_ADD_BATCH:,}). Recall@2:
share of the exact cosine top 2 the index returns, over {args.queries} perturbed questions.

| setting | insert s | docs/s | speed vs defaults | recall@2 | query p50 ms | disk MB |
|---|---:|---:|---:|---:|---:|---:|
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated rows")
    args = parser.parse_args()
    docs = list(_documents(upsample(args.docs)))
    embedder = HashingEmbedder()
    started = time.perf_counter()
    vectors = FixedVectors(embedder, [d.question for d in docs])
    embed_s = time.perf_counter() - started
    rng = random.Random(SEED)
    asked = [perturb(d.question, rng) for d in rng.sample(docs, min(args.queries, len(docs)))]
    queries = embedder.embed_queries(asked)
    matrix = vectors.embed_documents([d.question for d in docs])
    exact = np.argsort(-(queries @ matrix.T), axis=1)[:, :2]  # rows are L2-normalised
    results = []
    for name in args.settings.split(","):
        results.append(measure(name, docs, vectors, queries, exact))
        r = results[-1]
        print(f"{name}: {r['insert_s']:.1f} s, recall@2 {r['recall']:.3f}", flush=True)
        write_section("kb-insert", render(results, args, embed_s))


if __name__ == "__main__":
    main()
