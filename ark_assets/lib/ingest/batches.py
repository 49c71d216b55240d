"""One arrived file → the raw_dialogues and quarantined_records rows of its batch, and the one
transaction that stores a batch's tables together."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from ark_assets.lib.hashing import dialogue_sha256, medark_key
from ark_assets.lib.ingest import tables
from ark_assets.lib.ingest.dialogues import Limits
from ark_assets.lib.ingest.formats import FileIngest, ingest_file
from ark_assets.lib.tables import frame


@dataclass(frozen=True)
class BatchFrames:
    accepted: pl.DataFrame
    quarantined: pl.DataFrame
    result: FileIngest

    @property
    def rule_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rejection in self.result.rejections:
            counts[rejection.rule] = counts.get(rejection.rule, 0) + 1
        return dict(sorted(counts.items()))


def ingest_batch(
    batch: str,
    file_name: str,
    data: bytes,
    file_sha256: str,
    limits: Limits,
    now: datetime,
) -> BatchFrames:
    result = ingest_file(file_name, data, limits)
    where = {"batch": batch, "source_file": file_name, "file_sha256": file_sha256}
    accepted = frame(
        (
            {
                **where,
                "record_index": d.record_index,
                "source": d.source,
                "source_id": d.source_id,
                "language": d.language,
                "language_detected": d.language_detected,
                "source_format": d.source_format,
                "n_turns": len(d.turns),
                "turns_json": json.dumps(d.turns, ensure_ascii=False),
                "medark_key": medark_key(d.turns[0]),
                "dialogue_sha256": dialogue_sha256(d.turns),
                "ingested_at": now,
            }
            for d in result.dialogues
        ),
        tables.RAW_DIALOGUES,
    )
    quarantined = frame(
        (
            {
                **where,
                "record_index": r.record_index,
                "rule": r.rule,
                "message": r.message,
                "excerpt": r.excerpt,
                "quarantined_at": now,
            }
            for r in result.rejections
        ),
        tables.QUARANTINED_RECORDS,
    )
    return BatchFrames(accepted, quarantined, result)


def store_batch(
    conn: duckdb.DuckDBPyConnection, schema: str, batch: str, tables: Mapping[str, pl.DataFrame]
) -> None:
    """Replace ``batch``'s rows in each of ``tables`` (name -> rows) inside the caller's
    transaction, so a step that fills two tables commits both or neither (a ``kill -9``
    between two separate writes left raw rows without their quarantine rows).

    Tables are created as the warehouse IO manager creates them (from the frame's Arrow schema),
    which reads them back for downstream assets; rows go in by column name.
    """
    conn.execute(f"create schema if not exists {schema}")
    for name, rows in tables.items():
        conn.register("batch_rows", rows.to_arrow())
        try:
            conn.execute(
                f"create table if not exists {schema}.{name} as select * from batch_rows limit 0"
            )
            conn.execute(f"delete from {schema}.{name} where batch = ?", [batch])
            conn.execute(f"insert into {schema}.{name} by name select * from batch_rows")
        finally:
            conn.unregister("batch_rows")
