"""The openai backend against a scripted OpenAI-compatible endpoint on 127.0.0.1.

Fault cases: 5xx, 429 with Retry-After, timeouts, invalid JSON, schema-violating JSON, a server
without structured outputs, bad credentials; and the concurrency cap under load.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ark_assets.lib.synthesis.backends.openai_backend import OpenAIBackend, strict_schema
from ark_assets.lib.synthesis.loop import ArkLoop
from ark_assets.lib.synthesis.models import AskCheck, Response, RetrievalRequest
from ark_assets.lib.synthesis.teacher import (
    RetryPolicy,
    Teacher,
    TeacherFailure,
    TeacherRequest,
    TeacherUnavailable,
)
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets.testing.scripted_endpoint import Reply, ScriptedEndpoint, canned, output_name
from ark_assets_tests.lib.synthesis.conftest import sample_prefixes

_ASK = json.dumps({"reasoning": "it asks", "is_asking": True})


def _request() -> TeacherRequest[AskCheck]:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "多久了？"}]
    return TeacherRequest("classify", "zh", AskCheck, messages, {"reply": "多久了？"})


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[ScriptedEndpoint]:
    with ScriptedEndpoint(request.param) as server:
        yield server


def _teacher(server: ScriptedEndpoint, timeout_s: float = 10, **kwargs: Any):
    pauses: list[float] = []
    backend = OpenAIBackend(
        model="scripted", api_key="local", base_url=server.base_url, timeout_s=timeout_s
    )
    return Teacher(backend, sleep=pauses.append, **kwargs), pauses


def _statuses(*replies: Reply):
    def script(body: dict[str, Any], n: int) -> Reply:
        return replies[min(n, len(replies)) - 1]

    return script


@pytest.mark.parametrize(
    "endpoint",
    [_statuses(Reply(500), Reply(502), Reply(503), Reply(content=_ASK))],
    indirect=True,
)
def test_server_errors_are_retried_and_counted(endpoint: ScriptedEndpoint) -> None:
    teacher, pauses = _teacher(endpoint)
    answer, cached = teacher.ask(_request())
    assert answer.is_asking and not cached
    stats = teacher.stats.as_dict()["classify"]
    assert (stats["calls"], stats["retried"], stats["failed"]) == (4, 3, 0)
    assert len(endpoint.requests) == 4 and len(pauses) == 3
    assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0


@pytest.mark.parametrize(
    "endpoint",
    [_statuses(Reply(429, headers={"Retry-After": "3"}), Reply(content=_ASK))],
    indirect=True,
)
def test_rate_limits_wait_at_least_retry_after(endpoint: ScriptedEndpoint) -> None:
    teacher, pauses = _teacher(endpoint)
    assert teacher.ask(_request())[0].is_asking
    assert pauses == [3.0]


@pytest.mark.parametrize(
    "endpoint", [_statuses(Reply(content=_ASK, delay_s=1.5), Reply(content=_ASK))], indirect=True
)
def test_a_timeout_is_retried(endpoint: ScriptedEndpoint) -> None:
    teacher, _ = _teacher(endpoint, timeout_s=0.3)
    assert teacher.ask(_request())[0].is_asking
    assert teacher.stats.as_dict()["classify"]["retried"] == 1


@pytest.mark.parametrize("endpoint", [_statuses(Reply(content=_ASK, delay_s=1.0))], indirect=True)
def test_timeouts_on_every_attempt_become_a_failure(endpoint: ScriptedEndpoint) -> None:
    teacher, _ = _teacher(endpoint, timeout_s=0.2, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(TeacherFailure) as failure:
        teacher.ask(_request())
    assert failure.value.error_type == "TransientError"
    assert "no answer within 0.2 s" in failure.value.message
    assert teacher.stats.as_dict()["classify"]["failed"] == 1


@pytest.mark.parametrize(
    "endpoint",
    [_statuses(Reply(content="Sure, it is a question!"), Reply(content=_ASK))],
    indirect=True,
)
def test_invalid_json_is_shown_back_and_retried(endpoint: ScriptedEndpoint) -> None:
    teacher, _ = _teacher(endpoint)
    assert teacher.ask(_request())[0].is_asking
    repair = endpoint.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Sure, it is a question!"}
    assert "no JSON object" in repair[-1]["content"]


@pytest.mark.parametrize(
    "endpoint", [_statuses(Reply(content=json.dumps({"is_asking": "maybe"})))], indirect=True
)
def test_schema_violations_fail_after_the_attempts(endpoint: ScriptedEndpoint) -> None:
    teacher, _ = _teacher(endpoint, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(TeacherFailure) as failure:
        teacher.ask(_request())
    assert failure.value.error_type == "InvalidOutput" and failure.value.attempts == 3
    assert "reasoning: Field required" in failure.value.message
    assert "is_asking: Input should be a valid boolean" in failure.value.message
    assert len(endpoint.requests) == 3


def _no_structured_outputs(body: dict[str, Any], n: int) -> Reply:
    if "response_format" in body:
        return Reply(400, body=json.dumps({"error": {"message": "response_format not supported"}}))
    return Reply(content=f"Here you go:\n```json\n{_ASK}\n```")


def _json_object_only(body: dict[str, Any], n: int) -> Reply:
    """llama-cpp-python's server: a 500 naming the field for anything but json_object."""
    form = (body.get("response_format") or {}).get("type")
    if form != "json_object" or "schema" not in body["response_format"]:
        message = "validation error: response_format.type: Input should be 'text' or 'json_object'"
        return Reply(500, body=json.dumps({"error": {"message": message}}))
    return Reply(content=_ASK)


@pytest.mark.parametrize(
    ("endpoint", "settled", "sent"),
    [
        (_no_structured_outputs, "none", [True, True, False, False]),
        (_json_object_only, "json_object", [True, True, True]),
    ],
    indirect=["endpoint"],
)
def test_the_response_format_steps_down_to_what_the_server_accepts(
    endpoint: ScriptedEndpoint, settled: str, sent: list[bool]
) -> None:
    teacher, _ = _teacher(endpoint)
    assert teacher.ask(_request())[0].is_asking
    assert teacher.ask(_request())[0].is_asking  # no cache: asked again, in the settled form
    assert ["response_format" in b for b in endpoint.requests] == sent
    assert teacher.backend.response_format == settled  # type: ignore[attr-defined]
    assert teacher.stats.totals().retried == 0  # a format change is not a failed attempt


@pytest.mark.parametrize("endpoint", [_statuses(Reply(401))], indirect=True)
def test_bad_credentials_stop_the_run(endpoint: ScriptedEndpoint) -> None:
    teacher, _ = _teacher(endpoint)
    with pytest.raises(TeacherUnavailable, match="OPENAI_API_KEY"):
        teacher.ask(_request())
    assert len(endpoint.requests) == 1


@pytest.mark.parametrize("endpoint", [canned], indirect=True)
def test_requests_carry_a_strict_json_schema(endpoint: ScriptedEndpoint) -> None:
    teacher, _ = _teacher(endpoint)
    teacher.ask(_request())
    response_format = endpoint.requests[0]["response_format"]
    assert response_format["json_schema"]["name"] == "AskCheck"
    assert response_format["json_schema"]["strict"] is True
    schema = strict_schema(Response)
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Entities"]["required"] == list(
        schema["$defs"]["Entities"]["properties"]
    )
    assert "default" not in json.dumps(strict_schema(RetrievalRequest))


def _slow_failing_check(body: dict[str, Any], n: int) -> Reply:
    """50 ms an answer; broken JSON for every reasoning check of a dialogue mentioning 头."""
    if output_name(body) == "ReasoningCheck" and "头" in json.dumps(body, ensure_ascii=False):
        return Reply(content="{broken", delay_s=0.05)
    return Reply(content=canned(body, n).content, delay_s=0.05)


@pytest.mark.parametrize("endpoint", [_slow_failing_check], indirect=True)
def test_the_loop_caps_concurrency_and_accounts_every_failure(
    endpoint: ScriptedEndpoint, kb: MemoryRetriever
) -> None:
    items = sample_prefixes("zh", 6)
    teacher, _ = _teacher(endpoint, max_concurrency=3, retry=RetryPolicy(max_attempts=2))
    outcome = ArkLoop(teacher, kb, "kb").run(items)
    assert 2 <= endpoint.peak_in_flight <= 3
    assert len(outcome.paths) + len(outcome.failures) == len(items)
    assert outcome.failures and {f.stage for f in outcome.failures} == {"check"}
    check = teacher.stats.as_dict()["check"]
    assert check["failed"] == len(outcome.failures)
    assert check["retried"] >= len(outcome.failures)
    assert teacher.stats.totals().calls == len(endpoint.requests)
