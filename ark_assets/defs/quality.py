"""Check results every layer shares: row contracts (lib.gx), PHI-free scans, quarantine rules,
failure rates judged by a confidence bound; and the bounded log of rejected records."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

import dagster as dg
import polars as pl

from ark_assets.defs.metadata import table_metadata
from ark_assets.lib.compliance.deidentify import residual_phi
from ark_assets.lib.gx import run_suite
from ark_assets.lib.ingest.dialogues import Rejection, Rule
from ark_assets.lib.tables import Column

# A bad file can break thousands of records: the log names the first ones, the quarantine table
# holds them all.
LOGGED_REJECTIONS = 20
# Rate checks block at 95% confidence (two-sided Wilson interval, z = 1.96): a batch too small
# to tell a bad teacher from bad luck does not halt its chain.
RATE_CONFIDENCE = 0.95
_Z = 1.959963984540054  # the standard normal quantile of 1 - (1 - RATE_CONFIDENCE) / 2


def log_rejections(
    log: Any, rejections: Iterable[tuple[str, Rejection]], limit: int = LOGGED_REJECTIONS
) -> None:
    """One warning per rejected record (file, record, rule, fix), for the first ``limit``."""
    for name, rejection in itertools.islice(rejections, limit):
        where = f"{name} record {rejection.record_index}"
        log.warning(f"{where}: {rejection.rule}: {rejection.message}")


def quarantine_output(
    output_name: str,
    quarantined: pl.DataFrame,
    columns: tuple[Column, ...],
    rule_counts: dict[str, int],
    counts: dict[str, Any],
) -> dg.Output[pl.DataFrame]:
    """The quarantine table of a reader (dialogue batches, the knowledge base), with the
    records-read accounting and the count per broken rule."""
    metadata = {**table_metadata(quarantined, columns), **counts}
    return dg.Output(
        quarantined,
        output_name=output_name,
        metadata={**metadata, "rules": dg.MetadataValue.json(rule_counts)},
    )


def quarantine_rules_result(quarantined: pl.DataFrame) -> dg.AssetCheckResult:
    """Passes when every quarantined record names a known rule and carries a message."""
    unknown = quarantined.filter(~pl.col("rule").is_in(Rule.ALL) | pl.col("message").is_null())
    return dg.AssetCheckResult(
        passed=unknown.height == 0,
        metadata={"unknown_rules": sorted(set(unknown["rule"].drop_nulls().to_list()))},
    )


def gx_check(
    frame: pl.DataFrame, suite: str, expectations: list[Any], **result_kwargs: Any
) -> dg.AssetCheckResult:
    """Run a GX suite; the check fails with the failing expectations in its metadata."""
    result = run_suite(frame, suite, expectations)
    return dg.AssetCheckResult(
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows": frame.height,
            "expectations_evaluated": result.evaluated,
            "failed_expectations": dg.MetadataValue.json(result.failed),
        },
        **result_kwargs,
    )


def phi_free_result(texts: Iterable[str], **result_kwargs: Any) -> dg.AssetCheckResult:
    """Passes when no PHI detector fires on ``texts``; the metadata says which detectors fired
    and how often, never what they matched. Every PHI-free check (de-identified dialogues,
    knowledge-base documents, training records) uses it."""
    residual = residual_phi(texts)
    return dg.AssetCheckResult(
        passed=not residual,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "detections": sum(residual.values()),
            "by_detector": dg.MetadataValue.json(dict(sorted(residual.items()))),
        },
        **result_kwargs,
    )


def wilson_interval(failed: int, total: int, z: float = _Z) -> tuple[float, float]:
    """The Wilson score interval of the true rate behind ``failed`` of ``total``; ``(0, 1)``
    when ``total`` is 0 (no sample says nothing)."""
    if total <= 0:
        return 0.0, 1.0
    rate = failed / total
    spread = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total))
    centre = rate + z * z / (2 * total)
    scale = 1 + z * z / total
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def failure_rate_result(
    check_name: str, asset_key: str, failed: int, total: int, max_rate: float
) -> dg.AssetCheckResult:
    """Fails when the sample shows, at ``RATE_CONFIDENCE``, that more than ``max_rate`` of the
    items fail: the Wilson interval's lower bound exceeds it. With ``max_rate`` 5%: 1 failure in 4
    or more passes, 1 in 3 fails; 2 in 10 fails; 5 in 100 passes, 10 in 100 fails; an empty
    sample passes. The metadata shows the observed rate and both bounds."""
    lower, upper = wilson_interval(failed, total)
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=lower <= max_rate,
        metadata={
            "failed": failed,
            "total": total,
            "rate": failed / total if total else 0.0,
            "rate_lower_bound": round(lower, 4),
            "rate_upper_bound": round(upper, 4),
            "confidence": RATE_CONFIDENCE,
            "max": max_rate,
        },
    )
