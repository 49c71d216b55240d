"""Column contracts: what a warehouse table's contract is made of, and the columns layers share.

Each layer declares its own tables in its ``lib/<layer>/`` folder (``ingest/tables.py``,
``knowledge/tables.py``, ``synthesis/tables.py``, ``agent/tables.py``; training's in
``sft_records.py``, compliance's beside the code that fills them) from ``Column`` and the
shared columns below, so a column that joins
layers (``batch``, ``medark_key``, ``dialogue_sha256`` …) means one thing everywhere. Frames are
built against a contract (so an empty batch still has typed columns), and the Dagster side
publishes it as ``dagster/column_schema``.
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


# Columns shared across layers: the same name means the same thing in every table.
BATCH = Column("batch", pl.Utf8, "Dynamic partition key: arrived file name + sha256 prefix.")
SOURCE_FILE = Column("source_file", pl.Utf8, "Name of the file as dropped in the inbox.")
FILE_SHA256 = Column("file_sha256", pl.Utf8, "sha256 of the whole file's bytes.")
RECORD_INDEX = Column(
    "record_index",
    pl.Int64,
    "0-based position of the record: line number for JSONL (blank lines counted), list index "
    "for JSON, dialogue group order for long tables.",
)
TURNS_JSON = Column(
    "turns_json",
    pl.Utf8,
    "The dialogue as JSON: a list of {patient, doctor} turns, keys in the order they were read.",
)
MEDARK_KEY = Column("medark_key", pl.Utf8, "sha256(str(first turn)): MedArk's tagged.pkl key.")
DIALOGUE_SHA256 = Column(
    "dialogue_sha256", pl.Utf8, "Digest of the whole dialogue (exact-duplicate identity)."
)
