"""Teacher faults from a hostile or broken endpoint (issue 18, item 3), byte for byte on loopback.

Each answer is written in the test: an unparseable ``Retry-After``, a 200 with an HTML page, a
reply of 100,000 ``[``, an answer trickled past the deadline (body and headers), a 5 MB garbage
reply, an endpoint down for the whole run, 403 and 404, chunked and event-stream answers, an
answer over the size cap. Every one ends as an answer, a counted ``TeacherFailure``, or — for
refused credentials, an unknown model and an endpoint that stopped answering —
``TeacherUnavailable`` with what to fix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ark_assets.lib.synthesis.backends.openai_backend import OpenAIBackend
from ark_assets.lib.synthesis.loop import ArkLoop
from ark_assets.lib.synthesis.models import AskCheck
from ark_assets.lib.synthesis.teacher import (
    RetryPolicy,
    Teacher,
    TeacherFailure,
    TeacherRequest,
    TeacherUnavailable,
)
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets_tests.lib.synthesis.conftest import sample_prefixes
from ark_assets_tests.lib.synthesis.hostile_endpoint import (
    Hangup,
    HostileEndpoint,
    closed_port_url,
    completion_body,
    response,
)

_ASK = json.dumps({"reasoning": "it asks", "is_asking": True})
_JSON = [("content-type", "application/json")]
_HTML = [("content-type", "text/html")]


def _request() -> TeacherRequest[AskCheck]:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "多久了？"}]
    return TeacherRequest("classify", "zh", AskCheck, messages, {"reply": "多久了？"})


def _teacher(
    base_url: str, timeout_s: float = 10, attempts: int = 2, concurrency: int = 8, **backend: Any
) -> tuple[Teacher, list[float]]:
    pauses: list[float] = []
    teacher = Teacher(
        OpenAIBackend(
            model="hostile", api_key="local", base_url=base_url, timeout_s=timeout_s, **backend
        ),
        retry=RetryPolicy(max_attempts=attempts),
        max_concurrency=concurrency,
        sleep=pauses.append,
    )
    return teacher, pauses


def _ask_fails(teacher: Teacher) -> TeacherFailure:
    with pytest.raises(TeacherFailure) as failure:
        teacher.ask(_request())
    assert teacher.stats.as_dict()["classify"]["failed"] == 1
    return failure.value


def _always(raw: bytes):
    def answer(body: dict[str, Any], n: int) -> Iterator[bytes]:
        yield raw

    return answer


def _then_valid(*first: bytes):
    def answer(body: dict[str, Any], n: int) -> Iterator[bytes]:
        yield first[n - 1] if n <= len(first) else response(200, completion_body(_ASK), _JSON)

    return answer


def test_an_unparseable_retry_after_is_ignored_not_a_crash() -> None:
    soon = response(429, b'{"error": {"message": "slow down"}}', [("retry-after", "soon")])
    odd = response(503, b"{}", [("retry-after", "nan"), ("retry-after-ms", "-inf")])
    with HostileEndpoint(_then_valid(soon, odd)) as endpoint:
        teacher, pauses = _teacher(endpoint.base_url, attempts=3)
        assert teacher.ask(_request())[0].is_asking
    assert len(pauses) == 2 and all(0 <= p <= 30 for p in pauses)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (response(200, b"<html><body>Welcome to nginx!</body></html>", _HTML), "<html><body>"),
        (response(200, b"[" * 100_000, _JSON), "not a JSON object"),
        (response(200, b'{"detail": "Not Found"}', _JSON), "not a chat completion"),
        (response(200, b'{"choices": [{"message": "hi"}]}', _JSON), "not a chat completion"),
        (response(200, b"\xff\xfe\x00garbage", _JSON), "not a JSON object"),
        (
            response(200, completion_body(_ASK), [*_JSON, ("content-encoding", "gzip")]),
            "does not decode",
        ),
    ],
    ids=["html", "100k-brackets", "json-not-a-completion", "bad-choice", "binary", "not-gzip"],
)
def test_a_200_that_is_not_a_chat_completion_is_a_counted_failure(raw: bytes, says: str) -> None:
    with HostileEndpoint(_always(raw)) as endpoint:
        teacher, _ = _teacher(endpoint.base_url)
        failure = _ask_fails(teacher)
        assert len(endpoint.requests) == 2  # retried like any transient fault
    assert failure.error_type == "TransientError" and says in failure.message
    assert len(failure.message) < 400  # the body is quoted in a bounded snippet


def test_a_reply_of_100000_brackets_is_invalid_output_not_a_recursion_error() -> None:
    deep = response(200, completion_body("[" * 100_000), _JSON)
    with HostileEndpoint(_then_valid(deep)) as endpoint:
        teacher, _ = _teacher(endpoint.base_url)
        assert teacher.ask(_request())[0].is_asking
    assert "no JSON object" in endpoint.requests[1]["messages"][-1]["content"]


def _trickle(raw: bytes, every_s: float):
    def answer(body: dict[str, Any], n: int) -> Iterator[bytes]:
        for index in range(len(raw)):
            yield raw[index : index + 1]
            time.sleep(every_s)

    return answer


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_trickled_answer_is_cut_at_the_total_deadline(headers_too: bool) -> None:
    """One byte every 20 ms never trips a per-read timeout; the deadline is on the whole call."""
    valid = response(200, completion_body(_ASK), _JSON)
    head, _, body = valid.partition(b"\r\n\r\n")
    trickled = _trickle(valid if headers_too else body, 0.02)

    def answer(request: dict[str, Any], n: int) -> Iterator[bytes]:
        if not headers_too:
            yield head + b"\r\n\r\n"
        yield from trickled(request, n)

    with HostileEndpoint(answer) as endpoint:
        teacher, _ = _teacher(endpoint.base_url, timeout_s=0.5, attempts=1)
        started = time.monotonic()
        failure = _ask_fails(teacher)
        elapsed = time.monotonic() - started
    assert len(valid) * 0.02 > 3  # the whole answer would take longer than 3 s
    assert elapsed < 1.5 and "no answer within 0.5 s" in failure.message


def test_a_5_mb_garbage_reply_is_echoed_back_bounded() -> None:
    garbage = response(200, completion_body("garbage " * 650_000), _JSON)
    with HostileEndpoint(_then_valid(garbage, garbage)) as endpoint:
        teacher, _ = _teacher(endpoint.base_url, attempts=3)
        assert teacher.ask(_request())[0].is_asking
    for repair in endpoint.requests[1:]:
        echoed = repair["messages"][-2]
        assert echoed["role"] == "assistant" and len(echoed["content"]) <= 2_100
        assert "5,200,000 characters" in echoed["content"]  # says how much was left out
        assert len(json.dumps(repair)) < 20_000


def test_an_answer_over_the_size_cap_is_a_counted_failure() -> None:
    with HostileEndpoint(_always(response(200, b" " * 200_000, _JSON))) as endpoint:
        teacher, _ = _teacher(endpoint.base_url, max_answer_bytes=100_000)
        failure = _ask_fails(teacher)
    assert "more than 100,000 bytes" in failure.message


def test_an_endpoint_down_for_the_whole_run_stops_it_with_one_message(
    kb: MemoryRetriever,
) -> None:
    items = sample_prefixes("zh", 2)[:8]
    with Hangup() as down:
        teacher, _ = _teacher(down.base_url, attempts=4, concurrency=2, max_connection_failures=3)
        with pytest.raises(TeacherUnavailable) as stop:
            ArkLoop(teacher, kb, "kb").run(items)
    message = str(stop.value)
    assert down.base_url in message and "3 calls in a row" in message
    assert "OPENAI_BASE_URL" in message and "ARK_TEACHER_MAX_CONNECTION_FAILURES" in message
    assert down.connections <= 3 + 1  # the limit, plus what was in flight when it opened
    assert teacher.stats.totals().failed == 0  # no prefix was written off as a failure


def test_an_open_breaker_fails_at_once_without_a_connection() -> None:
    with Hangup() as down:
        teacher, _ = _teacher(down.base_url, attempts=4, max_connection_failures=2)
        with pytest.raises(TeacherUnavailable, match="connection failed"):
            teacher.ask(_request())
        started = time.monotonic()
        with pytest.raises(TeacherUnavailable, match="2 calls in a row"):
            teacher.ask(_request())
        assert time.monotonic() - started < 0.1
    assert down.connections == 2


def test_calls_timing_out_in_a_row_open_the_breaker() -> None:
    def silent(body: dict[str, Any], n: int) -> Iterator[bytes]:
        time.sleep(2)
        yield b""

    with HostileEndpoint(silent) as endpoint:
        teacher, _ = _teacher(
            endpoint.base_url, timeout_s=0.2, attempts=4, max_connection_failures=2
        )
        with pytest.raises(TeacherUnavailable, match=r"last: no answer within 0\.2 s"):
            teacher.ask(_request())
        assert len(endpoint.requests) == 2


def test_a_refused_port_names_the_endpoint_and_the_setting() -> None:
    url = closed_port_url()
    teacher, _ = _teacher(url, attempts=4, max_connection_failures=2)
    with pytest.raises(TeacherUnavailable) as stop:
        teacher.ask(_request())
    assert url in str(stop.value) and "ConnectionRefusedError" in str(stop.value)
    assert "ARK_TEACHER_MAX_CONNECTION_FAILURES (2)" in str(stop.value)


def test_answers_between_connection_failures_keep_the_breaker_closed() -> None:
    calls = [0]

    def flaky(body: dict[str, Any], n: int) -> Iterator[bytes]:
        calls[0] += 1
        if n % 2:  # every other request: hang up without an answer
            return
        yield response(200, completion_body(_ASK), _JSON)

    with HostileEndpoint(flaky) as endpoint:
        teacher, _ = _teacher(endpoint.base_url, attempts=2, max_connection_failures=2)
        for _ in range(4):
            assert teacher.ask(_request())[0].is_asking
    assert calls[0] == 8


@pytest.mark.parametrize(
    ("status", "setting"),
    [(403, "OPENAI_API_KEY"), (404, "ARK_TEACHER_MODEL")],
)
def test_403_and_404_stop_the_run_naming_what_to_check(status: int, setting: str) -> None:
    body = b'{"error": {"message": "no"}}'
    with HostileEndpoint(_always(response(status, body, _JSON))) as endpoint:
        teacher, _ = _teacher(endpoint.base_url)
        with pytest.raises(TeacherUnavailable, match=setting) as stop:
            teacher.ask(_request())
        assert len(endpoint.requests) == 1
    assert f"({status})" in str(stop.value)


def _chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def test_a_chunked_answer_is_read_whole() -> None:
    head = response(200, b"", [*_JSON, ("transfer-encoding", "chunked")])
    raw = head + _chunked(completion_body(_ASK), 7)
    with HostileEndpoint(_always(raw)) as endpoint:
        teacher, _ = _teacher(endpoint.base_url)
        assert teacher.ask(_request())[0].is_asking


def test_an_event_stream_nobody_asked_for_is_a_counted_failure() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": _ASK}}]}
    stream = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    raw = response(200, stream, [("content-type", "text/event-stream")])
    with HostileEndpoint(_always(raw)) as endpoint:
        teacher, _ = _teacher(endpoint.base_url)
        failure = _ask_fails(teacher)
        assert all(body.get("stream") in (None, False) for body in endpoint.requests)
    assert "text/event-stream" in failure.message
