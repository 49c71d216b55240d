"""Standard materialization metadata: row counts, column schemas, file digests, and what a file
artifact was built with."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from ark_assets.lib.compliance.provenance import BUILT_WITH, build_environment
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


def table_metadata(frame: pl.DataFrame | int, columns: tuple[Column, ...]) -> dict[str, Any]:
    """Row count and column schema of a table (``frame``: its rows, or their count when they
    were streamed into the warehouse and never held whole)."""
    return {
        "dagster/row_count": frame if isinstance(frame, int) else frame.height,
        "dagster/column_schema": column_schema(columns),
    }


def json_values(values: dict[str, Any]) -> dict[str, Any]:
    """Metadata from a summary dict: nested dicts and lists as JSON values, scalars as they are."""
    return {
        k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v for k, v in values.items()
    }


def language_counts(frame: pl.DataFrame) -> dg.MetadataValue:
    """Rows per language, for the asset page."""
    counts = frame.group_by("language").len().iter_rows()
    return dg.MetadataValue.json({str(language): n for language, n in counts})


def file_metadata(path: Path) -> dict[str, Any]:
    """A file artifact's path, sha256 and size, and what built it (``build_metadata``)."""
    return {
        "path": dg.MetadataValue.path(str(path)),
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        **build_metadata(),
    }


def build_metadata() -> dict[str, Any]:
    """The git commit and package versions of the process that builds the artifact, recorded
    with it: ``ark audit`` reports these, not the environment it happens to run in."""
    return {BUILT_WITH: dg.MetadataValue.json(build_environment())}


def training_metadata(result: dg.MaterializeResult) -> dict[str, Any]:
    """The trainer's curves for the asset page: the loss per step as a table, and the PNG plots
    it drew (SFT's loss, DPO's rewards) inline; and what the adapter was built with."""
    values = {
        k: v.value if isinstance(v, dg.MetadataValue) else v
        for k, v in (result.metadata or {}).items()
    }
    curve = values.get("loss_curve") or values.get("reward_curve")
    out: dict[str, Any] = build_metadata()
    if isinstance(curve, list) and curve:
        points = [p for p in curve if "loss" in p]
        out["loss_curve"] = dg.MetadataValue.table(
            records=[dg.TableRecord({"step": int(p["step"]), "loss": float(p["loss"])})
                     for p in points],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("step", "int"), dg.TableColumn("loss", "float")]
            ),
        )  # fmt: skip
    for key, caption in (("loss_plot_path", "training loss"), ("reward_plot_path", "DPO rewards")):
        path = Path(str(values.get(key) or ""))
        if values.get(key) and path.is_file():
            out[key.removesuffix("_path")] = png_markdown(path, caption)
    return out


def png_markdown(path: Path, caption: str) -> dg.MetadataValue:
    """A PNG inline in a markdown metadata value (a data URI: the UI shows it on the asset page)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{data})")
