"""Calls to an OpenAI-compatible endpoint, bounded whatever the server does: shared by the
teacher's ``openai`` backend and the student's ``OpenAIPolicy``.

- **A total deadline.** ``timeout_s`` bounds the whole call, connect to last byte. The HTTP
  client's own timeout is per read, so a server trickling a byte at a time never trips it; each
  call therefore runs as a coroutine on one event loop per process (a daemon thread) under
  ``asyncio.wait_for``, which cancels the request, and closes its connection, at the deadline.
- **A size cap.** The body is read in chunks and abandoned past ``max_answer_bytes``.
- **Any body.** The answer must be a JSON object; anything else (an HTML page, an event stream
  nobody asked for, binary, JSON nested deeper than the parser goes) is a ``TransientError``
  quoting a bounded snippet, never a parser's exception.
- **A circuit breaker.** ``max_connection_failures`` calls in a row that got no HTTP answer at
  all (refused, reset, timed out) stop the run: the next call raises the caller's
  ``unavailable`` error naming the endpoint and the settings, without touching the network.

An HTTP error status is raised as the client's ``openai.APIStatusError`` for the caller to read
(the teacher steps its response format down on some) and turn into a teacher error with
``translate_error``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx2  # the openai client's HTTP library (openai >= 3): what its streams raise
import openai

from ark_assets.lib.synthesis.jsontext import snippet
from ark_assets.lib.synthesis.teacher import (
    MAX_CONNECTION_FAILURES,
    CircuitBreaker,
    RejectedRequest,
    TeacherUnavailable,
    TransientError,
)

R = TypeVar("R")
# Far above any real answer (1,024 tokens of JSON-escaped Chinese is ~20 KB), far below what
# would hurt a worker's memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024

OpenResponse = Callable[
    [openai.AsyncOpenAI], AbstractAsyncContextManager[openai.AsyncAPIResponse[Any]]
]


class Endpoint:
    """One OpenAI-compatible server, called from any thread (see the module docstring)."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        timeout_s: float,
        max_connection_failures: int = MAX_CONNECTION_FAILURES,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        url_setting: str = "OPENAI_BASE_URL",
        breaker_setting: str = "ARK_TEACHER_MAX_CONNECTION_FAILURES",
        unavailable: type[Exception] = TeacherUnavailable,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_answer_bytes = max_answer_bytes
        self._api_key, self._base_url = api_key, base_url
        self._client: tuple[int, openai.AsyncOpenAI] | None = None
        self.url = _without_credentials(str(self._async_client().base_url))

        def message(failures: int, error: Exception) -> str:
            return (
                f"the endpoint {self.url} did not answer {failures} calls in a row (last: "
                f"{error}): check that the server is up and that {url_setting} points at it; "
                f"{breaker_setting} ({max_connection_failures}) is how many such failures stop "
                "the run (0: never)"
            )

        self.breaker = CircuitBreaker(max_connection_failures, message, unavailable)

    def call(self, open_response: OpenResponse) -> dict[str, Any]:
        """The JSON object the server answered to the request ``open_response`` opens.

        Raises ``TransientError`` (no answer, deadline, size cap, not a JSON object),
        ``openai.APIStatusError`` (an error status), or ``unavailable`` (the breaker opened)."""
        self.breaker.check()
        try:
            body, content_type = _run(self._read(open_response), self.timeout_s)
        except openai.APIStatusError:
            self.breaker.answered()
            raise
        except httpx2.DecodingError as err:  # the server's content-encoding lied
            self.breaker.answered()
            raise TransientError(f"the endpoint's answer does not decode: {err}") from err
        except (openai.APIConnectionError, httpx2.TransportError, TimeoutError) as err:
            failure = connection_failure(err, self.timeout_s)
            self.breaker.failed(failure)
            raise failure from err
        self.breaker.answered()
        return answer_object(body, content_type)

    def close(self) -> None:
        """Closes the pooled connections (the endpoint stays usable: a new pool opens)."""
        if self._client is not None and self._client[0] == os.getpid():
            client, self._client = self._client[1], None
            _run(client.close(), self.timeout_s)

    def _new_client(self) -> openai.AsyncOpenAI:
        # The client's own retries are off: the caller retries, counts and paces attempts.
        return openai.AsyncOpenAI(
            api_key=self._api_key, base_url=self._base_url, timeout=self.timeout_s, max_retries=0
        )

    def _async_client(self) -> openai.AsyncOpenAI:
        """This process's client (a forked child must not share its parent's connections)."""
        if self._client is None or self._client[0] != os.getpid():
            self._client = (os.getpid(), self._new_client())
        return self._client[1]

    async def _read(self, open_response: OpenResponse) -> tuple[bytes, str]:
        async with open_response(self._async_client()) as response:
            body = bytearray()
            async for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self.max_answer_bytes:
                    raise TransientError(
                        f"the endpoint's answer is more than {self.max_answer_bytes:,} bytes"
                    )
            return bytes(body), response.headers.get("content-type", "")


def answer_object(body: bytes, content_type: str) -> dict[str, Any]:
    """``body`` as a JSON object, or a ``TransientError`` quoting what came instead."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # bad JSON or text encoding; nesting past the parser
        value = None
    if not isinstance(value, dict):
        raise TransientError(
            f"the endpoint's answer is not a JSON object (content-type "
            f"{content_type or 'none'}): {snippet(body[:2000].decode('utf-8', 'replace'))!r}"
        )
    return value


def not_a_completion(what: str, answer: dict[str, Any]) -> TransientError:
    """The error for a JSON object that is not the ``what`` the request asked for."""
    try:
        text = json.dumps(answer, ensure_ascii=False)
    except (ValueError, RecursionError):
        text = "…"
    return TransientError(f"the endpoint's answer is not a {what}: {snippet(text)!r}")


def count(value: Any) -> int:
    """A token count from a server's ``usage``: a non-negative integer, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def connection_failure(err: Exception, timeout_s: float) -> TransientError:
    """No HTTP answer: refused, reset, or not within ``timeout_s``."""
    if isinstance(err, TimeoutError | openai.APITimeoutError | httpx2.TimeoutException):
        return TransientError(f"no answer within {timeout_s:g} s")
    root = _root_cause(err)
    return TransientError(f"connection failed: {type(root).__name__}: {_message(root)}")


def translate_error(
    err: openai.APIError,
    *,
    model: str,
    timeout_s: float,
    key_settings: str,
    model_settings: str,
    unavailable: type[Exception] = TeacherUnavailable,
) -> Exception:
    """A caller's view of an OpenAI client error: retry (``TransientError``: 429, 5xx, timeout,
    lost connection), give up on this request (``RejectedRequest``), or stop (``unavailable``:
    credentials refused or model not served; the message names ``key_settings`` or
    ``model_settings`` to check). Shared by the teacher and the student policy."""
    if isinstance(err, openai.APIConnectionError):  # timeouts included
        return connection_failure(err, timeout_s)
    if not isinstance(err, openai.APIStatusError):
        return RejectedRequest(f"{type(err).__name__}: {_message(err)}")
    status = err.status_code
    if status == 429:
        return TransientError("429 rate limited", retry_after(err.response.headers))
    if status >= 500:
        return TransientError(f"{status} server error", retry_after(err.response.headers))
    if status in (401, 403):
        return unavailable(f"the endpoint refused the credentials ({status}): check {key_settings}")
    if status == 404:
        return unavailable(
            f"the endpoint does not serve model {model!r} (404): check {model_settings}"
        )
    return RejectedRequest(f"{status} from the server: {_message(err)}")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``retry-after-ms`` or ``Retry-After`` header (delta seconds or an HTTP
    date); ``None`` when absent or unreadable: a header is a hint, never a reason to fail."""
    if (seconds := _seconds(headers.get("retry-after-ms"), scale=1000)) is not None:
        return seconds
    value = headers.get("retry-after")
    if value is None or (seconds := _seconds(value)) is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    try:
        return max(0.0, when.timestamp() - time.time())
    except (OverflowError, OSError, ValueError):
        return None


def _seconds(value: str | None, scale: float = 1) -> float | None:
    try:
        seconds = float(value) / scale if value is not None else math.nan
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _root_cause(err: BaseException) -> BaseException:
    """The innermost error of a chain: the OS's "Connection refused", not "Connection error"."""
    seen = {id(err)}
    while (cause := err.__cause__ or err.__context__) is not None and id(cause) not in seen:
        seen.add(id(cause))
        err = cause
    return err


def _message(err: BaseException) -> str:
    text = str(getattr(err, "message", None) or err) or type(err).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


_loop_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop for endpoint calls, on a daemon thread started on first use."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="ark-endpoint", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def _run(coroutine: Coroutine[Any, Any, R], timeout_s: float) -> R:
    """``coroutine``'s result, from any thread, cancelled after ``timeout_s`` (``TimeoutError``)."""

    async def bounded() -> R:
        return await asyncio.wait_for(coroutine, timeout_s)

    return asyncio.run_coroutine_threadsafe(bounded(), _event_loop()).result()
