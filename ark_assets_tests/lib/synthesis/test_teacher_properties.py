"""Properties of the teacher's response handling (hypothesis), for any response the endpoint
sends: any status, headers and body bytes — random bytes, random JSON, chat-completion envelopes
around random text, nesting past the parser's depth, content-encodings that lie.

- ``Teacher.ask`` on the ``openai`` backend returns an answer, or raises ``TeacherFailure``
  counted in its stage's ``failed``; only 401/403/404 raise ``TeacherUnavailable`` (the run
  stops: credentials or model). Nothing else escapes.
- ``jsontext.parse`` returns the model or raises ``InvalidOutput``, whatever the text.
- ``retry_after`` is ``None`` or a finite number of seconds ≥ 0, whatever the headers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ark_assets.lib.synthesis.backends.endpoint import retry_after
from ark_assets.lib.synthesis.backends.openai_backend import OpenAIBackend
from ark_assets.lib.synthesis.jsontext import InvalidOutput, parse
from ark_assets.lib.synthesis.models import AskCheck, Entities
from ark_assets.lib.synthesis.teacher import (
    RetryPolicy,
    Teacher,
    TeacherFailure,
    TeacherRequest,
    TeacherUnavailable,
)
from ark_assets_tests.lib.synthesis.hostile_endpoint import (
    HostileEndpoint,
    completion_body,
    response,
)

_ASK = json.dumps({"reasoning": "it asks", "is_asking": True})
_STOPS = (401, 403, 404)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
answers = st.one_of(
    st.text(max_size=300),
    json_values.map(lambda v: json.dumps(v)),
    st.just(_ASK),
    st.builds(lambda n: "[" * n, st.integers(1, 50_000)),
    st.builds(lambda n: '{"a":' * n, st.integers(1, 5_000)),
    st.builds(
        lambda pre, post: f"{pre}```json\n{_ASK}\n```{post}",
        st.text(max_size=40),
        st.text(max_size=40),
    ),
)
bodies = st.one_of(
    st.binary(max_size=2_000),
    json_values.map(lambda v: json.dumps(v).encode()),
    answers.map(completion_body),
    st.builds(lambda n: b"[" * n, st.integers(1, 100_000)),
    st.just(b'{"error": {"message": "response_format is not supported"}}'),
    st.builds(lambda n: b" " * n, st.integers(0, 300_000)),
)
statuses = st.one_of(
    st.sampled_from(
        [200, 201, 204, 299, 301, 304, 400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503]
    ),
    st.integers(200, 599),
)
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
headers = st.lists(
    st.tuples(
        st.sampled_from(
            ["retry-after", "retry-after-ms", "content-type", "content-encoding", "x-request-id"]
        ),
        st.one_of(
            header_values,
            st.sampled_from(
                ["gzip", "deflate", "text/html", "text/event-stream", "soon", "-1e999"]
            ),
        ),
    ),
    max_size=4,
)


class _Current:
    raw = b""

    def __call__(self, body: dict[str, Any], n: int) -> Iterator[bytes]:
        yield self.raw


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[HostileEndpoint, _Current]]:
    current = _Current()
    with HostileEndpoint(current) as server:
        yield server, current


def _request() -> TeacherRequest[AskCheck]:
    messages = [{"role": "user", "content": "多久了？"}]
    return TeacherRequest("classify", "zh", AskCheck, messages, {"reply": "多久了？"})


@settings(max_examples=100, deadline=None)
@given(status=statuses, header_list=headers, body=bodies)
def test_any_response_is_an_answer_or_a_counted_failure(
    endpoint: tuple[HostileEndpoint, _Current],
    status: int,
    header_list: list[tuple[str, str]],
    body: bytes,
) -> None:
    server, current = endpoint
    current.raw = response(status, body, header_list)
    backend = OpenAIBackend(model="m", api_key="k", base_url=server.base_url, timeout_s=5)
    teacher = Teacher(backend, retry=RetryPolicy(max_attempts=2), sleep=lambda seconds: None)
    try:
        answer, cached = teacher.ask(_request())
    except TeacherFailure:
        assert teacher.stats.totals().failed == 1
    except TeacherUnavailable:
        assert status in _STOPS
    else:
        assert isinstance(answer, AskCheck) and not cached
    finally:
        backend.close()


@settings(max_examples=200, deadline=None)
@given(text=answers)
def test_parse_returns_the_model_or_an_invalid_output(text: str) -> None:
    for output in (AskCheck, Entities):
        try:
            assert isinstance(parse(text, output), output)
        except InvalidOutput as err:
            assert len(str(err)) < 1_500


@settings(max_examples=200, deadline=None)
@given(header_list=headers)
def test_retry_after_is_none_or_finite_seconds(header_list: list[tuple[str, str]]) -> None:
    seconds = retry_after(httpx2.Headers(header_list))
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)
