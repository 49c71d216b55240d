"""The agent bench's table: ratios against MedArk's row, and modes a stopped run never reached."""

from __future__ import annotations

import argparse

from ark_assets.bench.agent import report


def _result(mode: str, seconds: float, tokens: int, first: list[str]) -> dict[str, object]:
    return {
        "mode": mode,
        "seconds": seconds,
        "prefixes": len(first),
        "generated_tokens": tokens,
        "generations": 3 * len(first),
        "malformed": 3 * len(first),
        "failed": len(first),
        "peak_rss_mb": 1500.0,
        "peak_cuda_mb": 0.0,
        "first_generations": first,
    }


def test_the_table_gives_each_mode_its_ratio_and_names_what_was_not_measured() -> None:
    args = argparse.Namespace(
        modes="single,batched,batched-unmerged",
        prefixes=2,
        batch_size=2,
        max_new_tokens=8,
        device="cpu",
        model="smollm2",
        adapter=None,
    )
    results = {
        "single": _result("single", 100.0, 400, ["a", "b"]),
        "batched": _result("batched", 20.0, 400, ["a", "c"]),
    }
    table = report(results, args)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if "|" in line}
    assert "| 1.00× |" in rows["single"]
    assert "| 5.00× |" in rows["batched"] and "| 20.0 |" in rows["batched"]
    assert "not measured" in rows["batched-unmerged"]
    assert "identical between single and batched: 1/2" in table
