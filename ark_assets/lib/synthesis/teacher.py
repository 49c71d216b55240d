"""The teacher: one interface over the backends, with the cache, retries, limits and accounting.

Every stage of the Ark loop asks the teacher for one structured answer (a pydantic model). The
teacher looks the request up in the persistent cache, otherwise calls the backend under a
concurrency cap and a requests-per-minute pace, parses and validates the answer, and retries
with exponential backoff and jitter on transient errors (429, 5xx, timeouts, connection errors)
and on invalid answers (bad JSON, schema or contract violations; the next attempt shows the
model its invalid answer, cut to ``REPAIR_ECHO_CHARS``, and the error). A request that still
fails, or that the server rejects for good, raises ``TeacherFailure``, which the loop records;
configuration errors and a dead endpoint (``TeacherUnavailable``: bad key, unknown model, the
backend's circuit breaker opened) stop the run instead.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from ark_assets.lib.synthesis import prompts
from ark_assets.lib.synthesis.cache import TeacherCache, cache_key
from ark_assets.lib.synthesis.jsontext import InvalidOutput, parse
from ark_assets.lib.synthesis.models import TeacherIdentity, TeacherOutput

T = TypeVar("T", bound=TeacherOutput)
# Enough of an invalid answer to show the model its mistake; a runaway answer (megabytes of
# garbage) is not sent back whole, which would bill it again on every repair.
REPAIR_ECHO_CHARS = 2_000


@dataclass(frozen=True)
class TeacherRequest(Generic[T]):
    """One structured question: rendered messages for model backends, ``context`` (the same
    information, unrendered) for the rules backend. Both are part of the cache key."""

    stage: str
    language: str
    output: type[T]
    messages: list[dict[str, str]]
    context: Mapping[str, Any]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage = Usage()


class TransientError(Exception):
    """Worth retrying after a pause (rate limit, server error, timeout, lost connection)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RejectedRequest(Exception):
    """The server refused this request for good (e.g. 400 prompt too long): not retried."""


class TeacherUnavailable(RuntimeError):
    """The backend cannot serve any request (bad key, unknown model): fix the configuration."""


class TeacherFailure(Exception):
    """A request that failed every attempt; the loop records it as a failure row."""

    def __init__(self, stage: str, error_type: str, message: str, attempts: int) -> None:
        super().__init__(f"{stage}: {error_type}: {message}")
        self.stage = stage
        self.error_type = error_type
        self.message = message
        self.attempts = attempts


class Backend(Protocol):
    identity: TeacherIdentity
    # In-flight requests the backend can serve at once (1 for an in-process model).
    max_concurrency: int

    def complete(self, request: TeacherRequest[Any]) -> Completion: ...


@dataclass(frozen=True)
class RetryPolicy:
    # MedArk retries a parse failure 3 times; one more attempt absorbs a transient error too.
    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is honoured as a minimum."""
        backoff = rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (retry - 1)))
        return max(backoff, min(retry_after or 0.0, self.max_delay_s))


# One failed wave at the default concurrency (8): an endpoint that is down stops the run before
# any request has used up its retries and been written off as a failure.
MAX_CONNECTION_FAILURES = 8


class CircuitBreaker:
    """Counts calls in a row, across threads, that got no answer from the endpoint. At ``limit``
    it opens: that call and every later one raise ``unavailable(message + last error)``. Any
    answer (an error status too: the server is there) resets the count. ``limit`` 0: never."""

    def __init__(
        self, limit: int, message: Callable[[int, Exception], str], unavailable: type[Exception]
    ) -> None:
        self.limit = limit
        self._message = message
        self._unavailable = unavailable
        self._failures = 0
        self._opened: str | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raises ``unavailable`` if the breaker is open."""
        if self._opened is not None:
            raise self._unavailable(self._opened)

    def answered(self) -> None:
        with self._lock:
            self._failures = 0

    def failed(self, error: Exception) -> None:
        """Counts ``error``; raises ``unavailable`` when this failure opens the breaker."""
        with self._lock:
            self._failures += 1
            if self.limit and self._failures >= self.limit and self._opened is None:
                self._opened = self._message(self._failures, error)
        self.check()


class Pacer:
    """Spaces request starts ``60 / requests_per_minute`` seconds apart (0 = no limit)."""

    def __init__(self, requests_per_minute: float, clock: Callable[[], float] = time.monotonic):
        self._interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, sleep: Callable[[float], None]) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            sleep(start - now)


@dataclass
class StageStats:
    calls: int = 0  # requests sent to the backend, retries included
    cached: int = 0  # answers served from the cache
    retried: int = 0  # attempts after the first
    failed: int = 0  # requests that failed every attempt
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class TeacherStats:
    stages: dict[str, StageStats] = field(default_factory=dict)
    peak_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _in_flight: int = 0

    def add(self, stage: str, **counts: int) -> None:
        with self._lock:
            stats = self.stages.setdefault(stage, StageStats())
            for name, value in counts.items():
                setattr(stats, name, getattr(stats, name) + value)

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def totals(self) -> StageStats:
        total = StageStats()
        for stats in self.stages.values():
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
        return total

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {stage: dict(vars(stats)) for stage, stats in sorted(self.stages.items())}


class Teacher:
    def __init__(
        self,
        backend: Backend,
        cache: TeacherCache | None = None,
        *,
        retry: RetryPolicy = RetryPolicy(),
        max_concurrency: int = 8,
        requests_per_minute: float = 0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.retry = retry
        self.concurrency = max(1, min(max_concurrency, backend.max_concurrency))
        self.stats = TeacherStats()
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pacer = Pacer(requests_per_minute)
        self._sleep = sleep
        self._rng = random.Random(seed)  # jitter only; answers never depend on it
        self._rng_lock = threading.Lock()

    @property
    def identity(self) -> TeacherIdentity:
        return self.backend.identity

    def ask(
        self, request: TeacherRequest[T], check: Callable[[T], None] | None = None
    ) -> tuple[T, bool]:
        """``(answer, from_cache)``; ``check`` may reject a parsed answer (``InvalidOutput``)."""
        identity = self.backend.identity
        key = cache_key(
            identity.backend,
            identity.model,
            request.output.__name__,
            prompts.schema_text(request.output),
            {"messages": request.messages, "context": request.context},
        )
        if self.cache is not None and (stored := self.cache.get(key)) is not None:
            self.stats.add(request.stage, cached=1)
            return request.output.model_validate_json(stored), True
        answer = self._attempts(request, check)
        if self.cache is not None:
            self.cache.put(
                key,
                backend=identity.backend,
                model=identity.model,
                stage=request.stage,
                output=request.output.__name__,
                value=answer.model_dump_json(),
            )
        return answer, False

    def _attempts(self, request: TeacherRequest[T], check: Callable[[T], None] | None) -> T:
        attempt_request = request
        error: Exception | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            if attempt > 1:
                self.stats.add(request.stage, retried=1)
                retry_after = error.retry_after if isinstance(error, TransientError) else None
                with self._rng_lock:
                    pause = self.retry.delay(attempt - 1, retry_after, self._rng)
                self._sleep(pause)
            try:
                completion = self._call(attempt_request)
                answer = parse(completion.text, request.output)
                if check is not None:
                    check(answer)
                return answer
            except TransientError as err:
                error = err
            except RejectedRequest as err:
                self.stats.add(request.stage, failed=1)
                raise TeacherFailure(request.stage, type(err).__name__, str(err), attempt) from err
            except InvalidOutput as err:
                error = err
                attempt_request = _with_repair(request, completion.text, str(err))
        self.stats.add(request.stage, failed=1)
        assert error is not None
        raise TeacherFailure(
            request.stage, type(error).__name__, str(error), self.retry.max_attempts
        )

    def _call(self, request: TeacherRequest[Any]) -> Completion:
        self._pacer.wait(self._sleep)
        with self._slots, self.stats.in_flight():
            self.stats.add(request.stage, calls=1)
            completion = self.backend.complete(request)
        self.stats.add(
            request.stage,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
        )
        return completion


def echoed(answer: str) -> str:
    """What a repair prompt quotes of an invalid answer: all of it up to ``REPAIR_ECHO_CHARS``,
    else its start and how long it was."""
    if len(answer) <= REPAIR_ECHO_CHARS:
        return answer
    return f"{answer[:REPAIR_ECHO_CHARS]}… [cut: the answer was {len(answer):,} characters]"


def _with_repair(request: TeacherRequest[T], answer: str, error: str) -> TeacherRequest[T]:
    """The original request followed by the invalid answer and what was wrong with it."""
    repair = [
        {"role": "assistant", "content": echoed(answer)},
        {"role": "user", "content": prompts.repair_message(request.language, error)},
    ]
    return replace(request, messages=[*request.messages, *repair])
