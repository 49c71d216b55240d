"""Counts over the synthesis tables: what a materialization reports and its checks compare."""

from __future__ import annotations

from typing import Any

import polars as pl

Key = tuple[str, int]


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(frame.group_by(column).len().iter_rows())}


def path_summary(paths: pl.DataFrame) -> dict[str, Any]:
    asking = int(paths["is_asking"].sum()) if paths.height else 0
    agree = int((paths["is_asking"] == paths["detector_is_asking"]).sum()) if paths.height else 0
    return {
        "stop_reasons": _counts(paths, "stop_reason"),
        "rounds": _counts(paths, "n_rounds"),
        "ask": asking,
        "tell": paths.height - asking,
        "ask_share": round(asking / paths.height, 4) if paths.height else 0.0,
        "detector_agreement": round(agree / paths.height, 4) if paths.height else 1.0,
        "prefixes_without_hits": int((paths["n_hits"] == 0).sum()) if paths.height else 0,
    }


def failure_summary(failures: pl.DataFrame) -> dict[str, Any]:
    return {"by_stage": _counts(failures, "stage"), "by_error": _counts(failures, "error_type")}


def keys(frame: pl.DataFrame) -> set[Key]:
    return set(frame.select("conversation_id", "turn_index").iter_rows())


def expected_prefixes(dialogues: pl.DataFrame) -> set[Key]:
    """One key per turn of every dialogue: each turn ends in a doctor reply."""
    return {
        (cid, turn)
        for cid, n_turns in dialogues.select("conversation_id", "n_turns").iter_rows()
        for turn in range(n_turns)
    }


def accounting(expected: set[Key], done: pl.DataFrame, failed: pl.DataFrame) -> dict[str, int]:
    """How ``expected`` keys ended up: each must be done or failed, exactly once."""
    done_keys, failed_keys = keys(done), keys(failed)
    return {
        "expected": len(expected),
        "done": len(done_keys),
        "failed": len(failed_keys),
        "missing": len(expected - done_keys - failed_keys),
        "unexpected": len((done_keys | failed_keys) - expected),
        "done_and_failed": len(done_keys & failed_keys),
        "repeated": done.height - len(done_keys) + failed.height - len(failed_keys),
    }


def accounted(counts: dict[str, int]) -> bool:
    return not any(counts[k] for k in ("missing", "unexpected", "done_and_failed", "repeated"))
