"""The student's OpenAI policy against a hostile or broken completions server (issue 18): the
same endpoint layer as the teacher, so the same faults end the same way — an error generation
the loop records, or ``PolicyUnavailable`` naming what to fix. Every answer is written here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ark_assets.lib.agent.openai_policy import OpenAIPolicy, PolicyUnavailable
from ark_assets.lib.agent.policy import GenerationRequest
from ark_assets.lib.synthesis.teacher import RetryPolicy
from ark_assets_tests.lib.synthesis.hostile_endpoint import Hangup, HostileEndpoint, response

_JSON = [("content-type", "application/json")]
_HI = GenerationRequest("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def _completion(text: str) -> bytes:
    body = {
        "object": "text_completion",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": "seven", "completion_tokens": -2},
    }
    return response(200, json.dumps(body).encode(), _JSON)


def _policy(base_url: str, attempts: int = 2, **kwargs: Any) -> OpenAIPolicy:
    return OpenAIPolicy(
        model="ark-sft",
        base_url=base_url,
        constraint_param="none",
        retry=RetryPolicy(max_attempts=attempts),
        sleep=lambda seconds: None,
        **{"timeout_s": 10, **kwargs},
    )


def _always(raw: bytes):
    def answer(body: dict[str, Any], n: int) -> Iterator[bytes]:
        yield raw

    return answer


def test_an_unparseable_retry_after_is_retried_and_odd_usage_counts_zero() -> None:
    soon = response(429, b"{}", [("retry-after", "soon")])

    def answer(body: dict[str, Any], n: int) -> Iterator[bytes]:
        yield soon if n == 1 else _completion("hello")

    with HostileEndpoint(answer) as endpoint:
        [generation] = _policy(endpoint.base_url).generate([_HI])
    assert (generation.text, generation.error) == ("hello", None)
    assert (generation.prompt_tokens, generation.completion_tokens) == (0, 0)
    assert generation.token_logprobs == []


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (response(200, b"<html>502 Bad Gateway</html>", [("content-type", "text/html")]), "<html>"),
        (response(200, b"[" * 100_000, _JSON), "not a JSON object"),
        (response(200, b'{"choices": [{"text": 7}]}', _JSON), "not a completion"),
        (
            response(200, b"data: {}\n\ndata: [DONE]\n\n", [("content-type", "text/event-stream")]),
            "text/event-stream",
        ),
    ],
    ids=["html", "100k-brackets", "bad-choice", "event-stream"],
)
def test_an_answer_that_is_not_a_completion_is_an_error_generation(raw: bytes, says: str) -> None:
    with HostileEndpoint(_always(raw)) as endpoint:
        [generation] = _policy(endpoint.base_url).generate([_HI])
        assert len(endpoint.requests) == 2
    assert generation.finish_reason == "error" and generation.text == ""
    error = generation.error or ""
    assert error.startswith("failed 2 attempts: ") and says in error


def test_a_trickled_completion_is_cut_at_the_total_deadline() -> None:
    def trickle(body: dict[str, Any], n: int) -> Iterator[bytes]:
        for byte in _completion("hello"):
            yield bytes([byte])
            time.sleep(0.02)

    with HostileEndpoint(trickle) as endpoint:
        started = time.monotonic()
        [generation] = _policy(endpoint.base_url, attempts=1, timeout_s=0.5).generate([_HI])
    assert time.monotonic() - started < 1.5
    assert generation.error == "failed 1 attempts: no answer within 0.5 s"


def test_a_server_that_stops_answering_stops_the_run_naming_the_settings() -> None:
    with Hangup() as down:
        policy = _policy(down.base_url, attempts=4, max_concurrency=2, max_connection_failures=3)
        with pytest.raises(PolicyUnavailable) as stop:
            policy.generate([GenerationRequest(str(i)) for i in range(6)])
    message = str(stop.value)
    assert down.base_url in message and "3 calls in a row" in message
    assert "ARK_POLICY_BASE_URL" in message and "ARK_POLICY_MAX_CONNECTION_FAILURES" in message
    assert down.connections <= 3 + 1  # the limit, plus the other request in flight


@pytest.mark.parametrize(
    ("status", "setting"), [(403, "ARK_POLICY_API_KEY"), (404, "ARK_POLICY_MODEL")]
)
def test_403_and_404_raise_unavailable_naming_the_setting(status: int, setting: str) -> None:
    with HostileEndpoint(_always(response(status, b"{}", _JSON))) as endpoint:
        with pytest.raises(PolicyUnavailable, match=setting):
            _policy(endpoint.base_url).generate([_HI])
        assert len(endpoint.requests) == 1
