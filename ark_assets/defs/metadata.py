"""Standard materialization metadata: row counts, column schemas, file digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from ark_assets.lib.hashing import sha256_file
from ark_assets.lib.tables import Column


def column_schema(columns: tuple[Column, ...]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, str(c.dtype), description=c.description) for c in columns]
    )


def table_metadata(frame: pl.DataFrame, columns: tuple[Column, ...]) -> dict[str, Any]:
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": column_schema(columns),
    }


def file_metadata(path: Path) -> dict[str, Any]:
    return {
        "path": dg.MetadataValue.path(str(path)),
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
    }
