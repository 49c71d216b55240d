"""The teacher: cache, retries with backoff, repair messages, limits and accounting."""

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ark_assets.lib.synthesis.cache import TeacherCache
from ark_assets.lib.synthesis.jsontext import InvalidOutput
from ark_assets.lib.synthesis.models import AskCheck
from ark_assets.lib.synthesis.teacher import (
    CircuitBreaker,
    Pacer,
    RetryPolicy,
    Teacher,
    TeacherFailure,
    TeacherRequest,
    TeacherUnavailable,
    TransientError,
)
from ark_assets_tests.lib.synthesis.conftest import ScriptedBackend

_VALID = json.dumps({"reasoning": "asks about onset", "is_asking": True})


def _request(reply: str = "多久了？") -> TeacherRequest[AskCheck]:
    messages = [{"role": "user", "content": reply}]
    return TeacherRequest("classify", "zh", AskCheck, messages, {"reply": reply})


def _teacher(backend: ScriptedBackend, **kwargs: Any) -> tuple[Teacher, list[float]]:
    pauses: list[float] = []
    return Teacher(backend, sleep=pauses.append, **kwargs), pauses


def test_a_warm_cache_answers_without_calling_the_backend(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda request, n: _VALID)
    cache = TeacherCache(tmp_path / "teacher.sqlite")
    cold, _ = _teacher(backend, cache=cache)
    assert cold.ask(_request()) == (AskCheck(reasoning="asks about onset", is_asking=True), False)
    warm, _ = _teacher(backend, cache=cache)
    answer, cached = warm.ask(_request())
    assert cached and answer.is_asking and len(backend.requests) == 1
    assert warm.stats.as_dict()["classify"]["calls"] == 0
    assert warm.stats.as_dict()["classify"]["cached"] == 1
    cache.close()


def test_transient_errors_back_off_and_honour_retry_after() -> None:
    def answer(request: Any, n: int) -> str:
        if n == 1:
            raise TransientError("429 rate limited", retry_after=7.0)
        if n == 2:
            raise TransientError("503 server error")
        return _VALID

    teacher, pauses = _teacher(ScriptedBackend(answer), retry=RetryPolicy(base_delay_s=0.5))
    answer_, _ = teacher.ask(_request())
    assert answer_.is_asking
    assert pauses[0] == 7.0  # Retry-After is a floor
    assert 0 <= pauses[1] <= 1.0  # full jitter under base * 2**1
    stats = teacher.stats.as_dict()["classify"]
    assert (stats["calls"], stats["retried"], stats["failed"]) == (3, 2, 0)
    assert stats["prompt_tokens"] == 7  # only the call that answered reports usage


def test_an_invalid_answer_is_shown_back_with_the_error() -> None:
    answers = iter(["I think it is a question", '{"reasoning": "r"}', _VALID])
    backend = ScriptedBackend(lambda request, n: next(answers))
    teacher, _ = _teacher(backend)
    assert teacher.ask(_request())[0].is_asking
    second, third = backend.requests[1].messages, backend.requests[2].messages
    assert second[1] == {"role": "assistant", "content": "I think it is a question"}
    assert "no JSON object" in second[2]["content"]
    assert third[1]["content"] == '{"reasoning": "r"}' and "is_asking" in third[2]["content"]
    assert len(third) == 3  # repairs replace each other, the conversation does not grow


def test_a_contract_check_rejects_and_retries_then_fails_with_the_reason() -> None:
    teacher, _ = _teacher(ScriptedBackend(lambda r, n: _VALID), retry=RetryPolicy(max_attempts=3))

    def must_tell(answer: AskCheck) -> None:
        if answer.is_asking:
            raise InvalidOutput("is_asking must be false")

    with pytest.raises(TeacherFailure) as failure:
        teacher.ask(_request(), must_tell)
    assert failure.value.stage == "classify" and failure.value.attempts == 3
    assert failure.value.error_type == "InvalidOutput" and "must be false" in failure.value.message
    stats = teacher.stats.as_dict()["classify"]
    assert (stats["calls"], stats["retried"], stats["failed"]) == (3, 2, 1)


def test_in_flight_calls_fill_the_concurrency_cap_and_never_exceed_it() -> None:
    # Each call waits until `cap` calls are in flight together: the peak reaches the cap
    # deterministically (a teacher running fewer at once breaks the barrier), and the pause after
    # it gives a 4th call time to slip past a broken cap.
    cap = 3
    together = threading.Barrier(cap, timeout=10)
    active, peak, lock = [0], [0], threading.Lock()

    def answer(request: Any, n: int) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        together.wait()
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return _VALID

    teacher = Teacher(ScriptedBackend(answer), max_concurrency=cap)
    failures: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            teacher.ask(_request(f"问题{i}？"))
        except BaseException as err:  # a thread's exception would otherwise be lost
            failures.append(err)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4 * cap)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert peak[0] == cap and teacher.stats.peak_in_flight == cap
    assert teacher.stats.totals().calls == 4 * cap


def test_the_concurrency_of_a_backend_caps_the_teacher() -> None:
    backend = ScriptedBackend(lambda r, n: _VALID, max_concurrency=1)
    assert Teacher(backend, max_concurrency=8).concurrency == 1


def test_the_pacer_spaces_request_starts() -> None:
    now = [100.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)

    pacer = Pacer(requests_per_minute=120, clock=lambda: now[0])
    for _ in range(3):
        pacer.wait(sleep)
    assert pauses == [0.5, 1.0]  # starts at 100.0, 100.5, 101.0 with the clock standing still
    assert Pacer(0).wait(sleep) is None and len(pauses) == 2


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0)
    rng = random.Random(1)
    bounds = [max(policy.delay(retry, None, rng) for _ in range(200)) for retry in (1, 2, 3, 6)]
    assert bounds[0] <= 1.0 < bounds[1] <= 2.0 < bounds[2] <= 4.0 and bounds[3] <= 4.0


def test_the_breaker_opens_on_failures_in_a_row_across_threads_and_stays_open() -> None:
    breaker = CircuitBreaker(8, lambda n, e: f"{n} in a row, last: {e}", TeacherUnavailable)
    for _ in range(7):
        breaker.failed(TransientError("refused"))
    breaker.answered()  # an answer in between: the count starts again
    opened: list[str] = []

    def fail_twice() -> None:
        for _ in range(2):
            try:
                breaker.failed(TransientError("refused"))
            except TeacherUnavailable as err:
                opened.append(str(err))

    threads = [threading.Thread(target=fail_twice) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened == ["8 in a row, last: refused"]  # the 8th failure since the answer
    breaker.answered()  # open stays open: a run does not limp on
    with pytest.raises(TeacherUnavailable, match="8 in a row"):
        breaker.check()
    never = CircuitBreaker(0, lambda n, e: "", TeacherUnavailable)
    for _ in range(100):
        never.failed(TransientError("refused"))
    never.check()
