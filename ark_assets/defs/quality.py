"""Turning row-contract results (lib.gx) into Dagster asset check results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg
import polars as pl

from ark_assets.lib.deidentify import residual_phi
from ark_assets.lib.gx import run_suite


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
