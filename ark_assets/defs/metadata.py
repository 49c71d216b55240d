"""Standard materialization metadata: row counts, column schemas, file digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from ark_assets.lib.hashing import sha256_file
from ark_assets.lib.tables import Column

# Tag of every asset that still holds dialogue text as it arrived (personal data not yet removed);
# one constant, so the de-identification layer changes it in one place.
PHI_RAW_TAGS = {"ark/phi": "raw"}
# Tag of every asset built from de-identified dialogues (deidentified_dialogues and downstream).
PHI_DEIDENTIFIED_TAGS = {"ark/phi": "deidentified"}


def column_schema(columns: tuple[Column, ...]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, str(c.dtype), description=c.description) for c in columns]
    )


def table_out(
    description: str,
    columns: tuple[Column, ...],
    *,
    code_version: str,
    per_batch: bool = True,
    partition_column: str = "batch",
    tags: dict[str, str] | None = None,
    automation: dg.AutomationCondition | None = None,
) -> dg.AssetOut:
    """One warehouse table of a multi-asset: polars in DuckDB, its column contract published,
    sliced by ``partition_column`` (``batch``: per dialogue batch) when it is partitioned.
    ``code_version`` is the table's own: bump it when the logic that fills it changes
    (docs/architecture.md)."""
    return dg.AssetOut(
        description=description,
        code_version=code_version,
        metadata={
            **({"partition_expr": partition_column} if per_batch else {}),
            "dagster/column_schema": column_schema(columns),
        },
        tags=tags,
        kinds={"polars", "duckdb"},
        automation_condition=automation,
    )


def table_metadata(frame: pl.DataFrame, columns: tuple[Column, ...]) -> dict[str, Any]:
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": column_schema(columns),
    }


def language_counts(frame: pl.DataFrame) -> dg.MetadataValue:
    """Rows per language, for the asset page."""
    counts = frame.group_by("language").len().iter_rows()
    return dg.MetadataValue.json({str(language): n for language, n in counts})


def file_metadata(path: Path) -> dict[str, Any]:
    return {
        "path": dg.MetadataValue.path(str(path)),
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
    }


_BARS = "▁▂▃▄▅▆▇█"


def training_metadata(result: dg.MaterializeResult) -> dict[str, Any]:
    """The trainer's loss curve as a table and a sparkline, for the asset page."""
    raw = (result.metadata or {}).get("loss_curve")
    curve = raw.value if isinstance(raw, dg.MetadataValue) else raw
    if not isinstance(curve, list) or not curve:
        return {}
    losses = [float(point["loss"]) for point in curve]
    low, high = min(losses), max(losses)
    span = (high - low) or 1.0
    bars = "".join(_BARS[int((x - low) / span * (len(_BARS) - 1))] for x in losses)
    return {
        "loss_curve": dg.MetadataValue.table(
            records=[
                dg.TableRecord({"step": int(p["step"]), "loss": float(p["loss"])}) for p in curve
            ],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("step", "int"), dg.TableColumn("loss", "float")]
            ),
        ),
        "loss_plot": dg.MetadataValue.md(
            f"`{bars}`  \nloss {losses[0]:.4f} → {losses[-1]:.4f} over {len(losses)} logged steps"
        ),
    }
