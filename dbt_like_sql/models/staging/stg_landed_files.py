"""One row per dialogue file in the landing area (``<landing>/<batch>/<file>``): its digest and
how many records it holds, counted by the platform's own independent counter
(``lib/ingest/formats.count_records``, the same one the ingest check uses) from the landed
bytes. ``assert_records_accounted`` holds the ingest tables to it."""

from pathlib import Path

import polars as pl

from ark_assets.lib.hashing import sha256_bytes
from ark_assets.lib.ingest.formats import count_records

SCHEMA = {
    "batch": pl.Utf8,
    "file_name": pl.Utf8,
    "file_sha256": pl.Utf8,
    "size_bytes": pl.Int64,
    "records_read": pl.Int64,
}


def landed_files(landing: Path) -> list[dict]:
    folders = sorted(p for p in landing.iterdir() if p.is_dir()) if landing.is_dir() else []
    rows = []
    for folder in folders:
        # Hidden names are a landing write still in progress (lib/artifacts: temp, then rename).
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name[0] != "."):
            data = path.read_bytes()
            rows.append(
                {
                    "batch": folder.name,
                    "file_name": path.name,
                    "file_sha256": sha256_bytes(data),
                    "size_bytes": len(data),
                    "records_read": count_records(path.name, data),
                }
            )
    return rows


def model(dbt, session):
    dbt.config(materialized="table")
    landing = dbt.config.get("landing")
    return pl.DataFrame(landed_files(Path(landing)), schema=SCHEMA)
