"""Great Expectations 1.x row contracts on polars frames, without a Dagster integration.

dagster-ge still requires GX < 1 (it is built on the removed ``DataContext`` API), so this runs a
suite on an ephemeral context (nothing written to disk) and summarises the result; the Dagster
side turns the summary into an ``AssetCheckResult``.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import polars as pl

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # the analytics default above must be set before this import
from great_expectations.data_context.types.base import ProgressBarsConfig

logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass(frozen=True)
class SuiteResult:
    success: bool
    evaluated: int
    failed: dict[str, Any] = field(default_factory=dict)


def run_suite(frame: pl.DataFrame, name: str, expectations: list[Any]) -> SuiteResult:
    """Validate ``frame`` against ``expectations``; failures keyed by ``type:column``."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    unique = f"{name}_{uuid.uuid4().hex[:8]}"
    batch = (
        context.data_sources.add_pandas(unique)
        .add_dataframe_asset(unique)
        .add_batch_definition_whole_dataframe(unique)
        .get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    )
    suite = gx.ExpectationSuite(name=unique, expectations=expectations)
    result = batch.validate(suite, result_format="SUMMARY")
    failed = {
        _label(r.expectation_config): {
            "unexpected_count": r.result.get("unexpected_count"),
            "partial_unexpected_list": [
                str(v) for v in r.result.get("partial_unexpected_list", [])[:5]
            ],
            "observed_value": str(r.result.get("observed_value")),
        }
        for r in result.results
        if not r.success
    }
    return SuiteResult(bool(result.success), len(result.results), failed)


def _label(config: Any) -> str:
    column = config.kwargs.get("column") or config.kwargs.get("column_list")
    return f"{config.type}:{column}"
