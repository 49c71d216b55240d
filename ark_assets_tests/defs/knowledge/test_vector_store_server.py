"""Server mode for real: a `chroma run` process on loopback, indexed and queried over HTTP."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ark_assets.defs.knowledge.resources import EmbedderResource, VectorStoreResource
from ark_assets.lib.knowledge.records import KbLimits, SourceFile, build_kb
from ark_assets_tests.defs.knowledge.conftest import sample_lines

_STARTUP_S = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _heartbeat(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    chroma = Path(sys.executable).with_name("chroma")
    log = (tmp_path / "chroma.log").open("wb")
    server = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(tmp_path / "server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.monotonic() + _STARTUP_S
        while not _heartbeat(port):
            assert server.poll() is None, (tmp_path / "chroma.log").read_text()
            assert time.monotonic() < deadline, "chroma run did not answer its heartbeat"
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_index_and_search_through_a_chroma_server(chroma_server: int, tmp_path: Path) -> None:
    store = VectorStoreResource(host="127.0.0.1", port=chroma_server)
    embedder = EmbedderResource(backend="hashing", hashing_dim=256)
    documents = build_kb([SourceFile("kb.jsonl", sample_lines(0, 30), "0" * 64)], KbLimits())
    stats = store.index(embedder).sync(documents.documents[:25], batch_size=10)
    assert (stats.added, stats.count) == (25, 25)
    again = store.index(embedder).sync(documents.documents[5:30])
    assert (again.added, again.removed, again.kept) == (5, 5, 20)

    target = documents.documents[12]
    hits = store.retriever(embedder).search(target.question, k=2)
    assert hits[0].doc_id == target.doc_id and hits[0].answer == target.answer
    assert store.location == f"http://127.0.0.1:{chroma_server}"
    assert not (tmp_path / "chroma").exists()  # nothing went to an embedded store
    assert (tmp_path / "server").is_dir()
