"""parallel_map keeps input order, reports progress as items finish and stops on a crash."""

import threading
import time

import pytest

from ark_assets.lib.synthesis.loop import parallel_map


@pytest.mark.parametrize("workers", [1, 4])
def test_results_in_order_with_progress_on_the_calling_thread(workers: int) -> None:
    caller = threading.get_ident()
    seen: list[tuple[int, int, bool]] = []

    def slow_square(x: int) -> int:
        time.sleep(0.01 * (5 - x % 5))  # later items finish first
        return x * x

    results = parallel_map(
        slow_square,
        range(10),
        workers,
        lambda done, total: seen.append((done, total, threading.get_ident() == caller)),
    )
    assert results == [x * x for x in range(10)]
    assert seen == [(done, 10, True) for done in range(1, 11)]


def test_a_crash_propagates_and_stops_what_has_not_started() -> None:
    started: list[int] = []

    def crash_on_first(x: int) -> int:
        started.append(x)
        if x == 0:
            raise RuntimeError("teacher backend crashed")
        time.sleep(0.05)
        return x

    with pytest.raises(RuntimeError, match="crashed"):
        parallel_map(crash_on_first, range(50), 2)
    assert len(started) < 50
