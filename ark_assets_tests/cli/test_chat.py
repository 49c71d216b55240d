"""`ark chat` through stdin and `ark serve`'s page answering a request on 127.0.0.1, both over
the real loop with a scripted policy (no model needed to pin the behaviour down)."""

import io
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ark_assets.cli import main
from ark_assets.lib.agent.chat import ChatSession
from ark_assets.lib.agent.loop import AgentLoop, LoopSettings
from ark_assets.lib.agent.policy import GenerationRequest
from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.teacher import Teacher
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets.testing.scripted_policy import ScriptedPolicy, ask, retrieve, tell


def _script(request: GenerationRequest, _: int) -> str:
    if "<tool_response>" not in request.prompt:
        return retrieve("发烧三天怎么办")
    return tell("多喝水，注意休息。") if "谢谢" in request.prompt else ask("烧到多少度？")


@pytest.fixture
def loop(qwen_tokenizer: Any, kb: MemoryRetriever) -> AgentLoop:
    teacher = Teacher(RulesBackend(), max_concurrency=1)
    return AgentLoop(ScriptedPolicy(_script), qwen_tokenizer, kb, teacher, LoopSettings())


def test_ark_chat_reads_the_patient_from_stdin_and_shows_the_path(
    loop: AgentLoop, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @contextmanager
    def scripted_agent(adapter: Any, **_: Any) -> Iterator[AgentLoop]:
        assert adapter is None
        yield loop

    monkeypatch.setattr("ark_assets.cli.agent.open_agent", scripted_agent)
    monkeypatch.setattr(sys, "stdin", io.StringIO("我发烧三天了\n谢谢医生\n\n"))
    main(["chat", "--language", "zh"])
    out = capsys.readouterr().out
    assert out.count("[retrieval 1] queries: 发烧三天怎么办") == 2
    assert "[AskAction] reasoning:" in out and "doctor> 烧到多少度？" in out
    assert "[TellAction]" in out and "doctor> 多喝水，注意休息。" in out
    # the second message was answered with the first exchange as its history
    last_prompt = loop.policy.requests[-1].prompt  # type: ignore[attr-defined]
    assert "我发烧三天了" in last_prompt and "烧到多少度？" in last_prompt


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_ark_serve_answers_one_request_on_loopback(loop: AgentLoop) -> None:
    pytest.importorskip("gradio", reason="ark serve needs the serve extra")
    from gradio_client import Client

    from ark_assets.cli.serve import build_app

    app = build_app(lambda: ChatSession(loop, language="zh"))
    port = _free_port()
    app.queue().launch(
        server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=True
    )
    try:
        assert app.local_url.startswith(f"http://127.0.0.1:{port}")
        assert app.share_url is None
        client = Client(app.local_url, verbose=False)
        _, messages, path, raw = client.predict("我发烧三天了", [], api_name="/respond")
        content = messages[-1]["content"]  # Gradio 6 returns a list of typed parts
        text = content if isinstance(content, str) else "".join(p["text"] for p in content)
        assert messages[-1]["role"] == "assistant" and text == "[AskAction] 烧到多少度？"
        assert path[0]["retrieval"]["queries"] == ["发烧三天怎么办"]
        assert path[-1]["final"] == "AskAction"
        assert "RetrievalAction" in raw
    finally:
        app.close()
