"""Column contracts of the warehouse tables: names, polars types and what each column means.

One place for every table's schema: frames are built against it (so an empty batch still has
typed columns), and the Dagster side publishes it as ``dagster/column_schema``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl


@dataclass(frozen=True)
class Column:
    name: str
    dtype: Any  # a polars data type
    description: str


def schema_of(columns: Iterable[Column]) -> dict[str, Any]:
    return {c.name: c.dtype for c in columns}


def frame(rows: Iterable[Mapping[str, Any]], columns: tuple[Column, ...]) -> pl.DataFrame:
    """A frame with exactly ``columns``, typed even when there are no rows."""
    data: dict[str, list[Any]] = {c.name: [] for c in columns}
    for row in rows:
        for name, values in data.items():
            values.append(row[name])
    return pl.DataFrame(data, schema=schema_of(columns))


_BATCH = Column("batch", pl.Utf8, "Dynamic partition key: arrived file name + sha256 prefix.")
_SOURCE_FILE = Column("source_file", pl.Utf8, "Name of the file as dropped in the inbox.")
_FILE_SHA = Column("file_sha256", pl.Utf8, "sha256 of the whole file's bytes.")
_RECORD = Column(
    "record_index",
    pl.Int64,
    "0-based position of the record: line number for JSONL (blank lines counted), list index "
    "for JSON, dialogue group order for long tables.",
)
_TURNS = Column(
    "turns_json",
    pl.Utf8,
    "The dialogue as JSON: a list of {patient, doctor} turns, keys in the order they were read.",
)
_KEY = Column("medark_key", pl.Utf8, "sha256(str(first turn)): MedArk's tagged.pkl key.")
_DIGEST = Column(
    "dialogue_sha256", pl.Utf8, "Digest of the whole dialogue (exact-duplicate identity)."
)

RAW_DIALOGUES = (
    _BATCH,
    _SOURCE_FILE,
    _FILE_SHA,
    _RECORD,
    Column("source", pl.Utf8, "Corpus the dialogue comes from, when the record says."),
    Column("source_id", pl.Utf8, "Id of the dialogue in its corpus, when the record says."),
    Column("language", pl.Utf8, "zh or en."),
    Column("language_detected", pl.Boolean, "True when the language was detected, not given."),
    Column("source_format", pl.Utf8, "jsonl, json, long_table_csv or long_table_parquet."),
    Column("n_turns", pl.Int64, "Number of patient/doctor turns."),
    _TURNS,
    _KEY,
    _DIGEST,
    Column("ingested_at", pl.Datetime("us", "UTC"), "When this batch was materialized."),
)

QUARANTINED_RECORDS = (
    _BATCH,
    _SOURCE_FILE,
    _FILE_SHA,
    Column("record_index", pl.Int64, "As in raw_dialogues; null when the whole file failed."),
    Column("rule", pl.Utf8, "Name of the quarantine rule the record broke."),
    Column("message", pl.Utf8, "What is wrong and how to fix it."),
    Column("excerpt", pl.Utf8, "The start of the raw record (bounded)."),
    Column("quarantined_at", pl.Datetime("us", "UTC"), "When the record was quarantined."),
)

TAGGED_DIALOGUES = (
    _BATCH,
    Column(
        "conversation_id",
        pl.Utf8,
        "Unique id: the MedArk key, or <key>~<digest prefix> for a colliding dialogue.",
    ),
    _KEY,
    _DIGEST,
    _SOURCE_FILE,
    _RECORD,
    Column("source", pl.Utf8, "As in raw_dialogues."),
    Column("source_id", pl.Utf8, "As in raw_dialogues."),
    Column("language", pl.Utf8, "zh or en."),
    Column("n_turns", pl.Int64, "Number of patient/doctor turns."),
    _TURNS,
    Column("occurrences", pl.Int64, "Records of this batch collapsed into this row (1 = unique)."),
)

TAG_COLLISIONS = (
    _BATCH,
    Column("kind", pl.Utf8, "collision (same key, other dialogue: kept) or duplicate (collapsed)."),
    Column("medark_key", pl.Utf8, "The shared MedArk key."),
    Column("dialogue_sha256", pl.Utf8, "Digest of this record's dialogue."),
    _SOURCE_FILE,
    _RECORD,
    Column("conversation_id", pl.Utf8, "Where this record's dialogue lives now."),
    Column("other_conversation_id", pl.Utf8, "The dialogue it collided with or duplicated."),
    Column("other_batch", pl.Utf8, "Batch holding that other dialogue."),
)
