"""Shared check helpers: failure rates judged by a confidence bound, not by the raw share."""

import dagster as dg
import pytest

from ark_assets.defs.quality import RATE_CONFIDENCE, failure_rate_result, wilson_interval


@pytest.mark.parametrize(
    ("failed", "total", "lower", "upper"),
    [
        (1, 5, 0.0362, 0.6245),  # the published Wilson interval of 1/5 at 95%
        (10, 100, 0.0552, 0.1744),
        (0, 5, 0.0, 0.4345),
        (5, 5, 0.5655, 1.0),
        (0, 0, 0.0, 1.0),  # no sample says nothing
    ],
)
def test_the_wilson_interval(failed: int, total: int, lower: float, upper: float) -> None:
    low, high = wilson_interval(failed, total)
    assert (round(low, 4), round(high, 4)) == (lower, upper)


def test_one_failure_in_five_asks_does_not_block_at_five_percent() -> None:
    """Issue 18: the raw share (20%) halted a chain on a sample too small to mean anything."""
    result = failure_rate_result("rate", "asset", failed=1, total=5, max_rate=0.05)
    assert result.passed
    assert result.metadata["rate"] == dg.MetadataValue.float(0.2)
    assert result.metadata["rate_lower_bound"] == dg.MetadataValue.float(0.0362)
    assert result.metadata["confidence"] == dg.MetadataValue.float(RATE_CONFIDENCE)


@pytest.mark.parametrize(
    ("failed", "total", "passed"),
    [
        (1, 4, True),
        (1, 3, False),
        (1, 1, False),  # a batch of one that failed: everything failed
        (2, 10, False),
        (5, 100, True),
        (10, 100, False),
        (50, 1000, True),
        (70, 1000, False),
        (0, 0, True),
    ],
)
def test_a_rate_blocks_only_when_its_lower_bound_exceeds_the_limit(
    failed: int, total: int, passed: bool
) -> None:
    result = failure_rate_result("rate", "asset", failed=failed, total=total, max_rate=0.05)
    assert result.passed is passed
