"""Readers for every accepted dialogue file format.

Each reader turns a file's bytes into a stream of ``(record_index, raw_record)`` pairs, or
``Rejection``s for what cannot even be parsed (a truncated JSON file, a line that is not UTF-8).
``validate_record`` then decides on each parsed record. See docs/data-formats.md.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ark_assets.lib.ingest.dialogues import (
    Dialogue,
    Limits,
    Rejection,
    Rule,
    excerpt_of,
    shown_names,
    validate_record,
)

Parsed = tuple[int, Any] | Rejection

LONG_TABLE_COLUMNS = ("dialogue_id", "turn_index", "role", "text")
_BOM = b"\xef\xbb\xbf"


@dataclass
class FileIngest:
    """Everything read from one file: accepted dialogues and quarantined records."""

    source_format: str
    dialogues: list[Dialogue] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def records_read(self) -> int:
        return len(self.dialogues) + len(self.rejections)


def file_suffix(name: str) -> str:
    """The lower-case extension that picks a file's reader ("" when there is none)."""
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def ingest_file(name: str, data: bytes, limits: Limits) -> FileIngest:
    """Parse and validate one dialogue file; every record ends up accepted or rejected."""
    suffix = file_suffix(name)
    reader = _READERS.get(suffix)
    if reader is None:
        result = FileIngest(source_format="unknown")
        result.rejections.append(
            Rejection(
                None,
                Rule.UNSUPPORTED_FORMAT,
                f"unsupported file extension {suffix!r}; accepted: {sorted(_READERS)}",
                excerpt_of(data[:120]),
            )
        )
        return result
    source_format, read = reader
    result = FileIngest(source_format=source_format)
    for item in read(data):
        if isinstance(item, Rejection):
            result.rejections.append(item)
            continue
        index, raw = item
        outcome = validate_record(index, raw, source_format, limits)
        if isinstance(outcome, Dialogue):
            result.dialogues.append(outcome)
        else:
            result.rejections.append(outcome)
    return result


def read_jsonl(data: bytes) -> Iterator[Parsed]:
    """One dialogue per non-blank line; blank lines are layout, not records."""
    data = data.removeprefix(_BOM)
    for index, line in enumerate(data.splitlines()):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            yield Rejection(
                index,
                Rule.NOT_UTF8,
                f"line {index + 1} is not UTF-8 ({err.reason} at byte {err.start}); "
                "re-export the file as UTF-8",
                excerpt_of(line),
            )
            continue
        try:
            yield index, json.loads(text)
        except json.JSONDecodeError as err:
            yield Rejection(
                index,
                Rule.UNPARSEABLE_RECORD,
                f"line {index + 1} is not valid JSON: {err.msg} at column {err.colno}",
                excerpt_of(text),
            )


def decode_utf8(data: bytes) -> str | Rejection:
    """The file's text (BOM dropped), or a whole-file rejection naming the bad byte."""
    try:
        return data.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(
            None,
            Rule.NOT_UTF8,
            f"file is not UTF-8 ({err.reason} at byte {err.start}); re-export it as UTF-8",
            excerpt_of(data[max(0, err.start - 40) : err.start + 40]),
        )


def read_json_list(data: bytes, expected: str) -> Iterator[Parsed]:
    """The items of a file holding one JSON list; ``expected`` names them in messages."""
    text = decode_utf8(data)
    if isinstance(text, Rejection):
        yield text
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        yield Rejection(
            None,
            Rule.UNPARSEABLE_FILE,
            f"file is not valid JSON: {err.msg} at line {err.lineno} column {err.colno} "
            "(truncated upload?); nothing in it was read",
            excerpt_of(text[max(0, err.pos - 120) : err.pos + 120]),
        )
        return
    if not isinstance(document, list):
        yield Rejection(
            None,
            Rule.WRONG_SHAPE,
            f"a .json file must hold a list of {expected}, got {type(document).__name__}",
            excerpt_of(text),
        )
        return
    yield from enumerate(document)


def read_json(data: bytes) -> Iterator[Parsed]:
    """A JSON list of dialogues, MedArk evaluation items or MedArk result items."""
    return read_json_list(data, "dialogues")


def read_csv(data: bytes) -> Iterator[Parsed]:
    """A long table: one row per utterance (dialogue_id, turn_index, role, text)."""
    try:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, encoding="utf8")
    except Exception as err:  # polars raises several error types for malformed CSV
        yield _unparseable_table(err, data)
        return
    yield from _long_table_records(frame)


def read_parquet(data: bytes) -> Iterator[Parsed]:
    """The long table as Parquet."""
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as err:  # polars raises several error types for malformed Parquet
        yield _unparseable_table(err, data)
        return
    yield from _long_table_records(frame)


def _unparseable_table(err: Exception, data: bytes) -> Rejection:
    return Rejection(
        None,
        Rule.UNPARSEABLE_FILE,
        # The parser's message quotes the offending rows: they belong in the excerpt only.
        f"file is not a readable table ({type(err).__name__}); a long table is a UTF-8 CSV or "
        f"Parquet file with the columns {list(LONG_TABLE_COLUMNS)}",
        excerpt_of(data[:120]),
    )


def _long_table_records(frame: pl.DataFrame) -> Iterator[Parsed]:
    missing = [c for c in LONG_TABLE_COLUMNS if c not in frame.columns]
    if missing:
        yield Rejection(
            None,
            Rule.WRONG_KEYS,
            f"long table lacks columns {missing}; required: {list(LONG_TABLE_COLUMNS)}",
            excerpt_of(str(frame.columns)),
        )
        return
    frame = frame.with_row_index("_row").with_columns(
        pl.col("turn_index").cast(pl.Int64, strict=False).alias("_turn"),
        pl.col("dialogue_id").cast(pl.Utf8),
    )
    groups = frame.group_by("dialogue_id", maintain_order=True).agg(pl.all())
    for index, group in enumerate(groups.iter_rows(named=True)):
        yield _long_table_dialogue(index, group)


def _long_table_dialogue(index: int, group: dict[str, Any]) -> Parsed:
    rows = sorted(
        zip(group["_turn"], group["role"], group["text"], strict=True),
        key=lambda row: (row[0] is None, row[0]),
    )
    excerpt = excerpt_of({"dialogue_id": group["dialogue_id"], "rows": rows[:4]})
    if any(turn is None for turn, _, _ in rows):
        return Rejection(
            index, Rule.WRONG_TYPE, "turn_index must be an integer on every row", excerpt
        )
    roles = [str(role).strip().lower() for _, role, _ in rows]
    expected = ["patient", "doctor"] * (len(rows) // 2 + 1)
    if roles != expected[: len(roles)] or len(roles) % 2:
        return Rejection(
            index,
            Rule.ROLE_ORDER,
            f"dialogue {group['dialogue_id']!r}: roles must alternate patient, doctor and end "
            f"with a doctor reply; got {shown_names(roles)}",
            excerpt,
        )
    turns = [{"patient": rows[i][2], "doctor": rows[i + 1][2]} for i in range(0, len(rows), 2)]
    record: dict[str, Any] = {"source_id": group["dialogue_id"], "turns": turns}
    for optional in ("source", "language"):
        values = {v for v in group.get(optional, []) if v is not None}
        if len(values) == 1:
            record[optional] = values.pop()
    return index, record


_READERS: dict[str, tuple[str, Callable[[bytes], Iterator[Parsed]]]] = {
    "jsonl": ("jsonl", read_jsonl),
    "json": ("json", read_json),
    "csv": ("long_table_csv", read_csv),
    "parquet": ("long_table_parquet", read_parquet),
}
SUPPORTED_EXTENSIONS = tuple(_READERS)


def count_records(name: str, data: bytes) -> int:
    """How many records a file holds, counted without validating them.

    An independent count for the ``records read = accepted + quarantined`` check: non-blank
    lines for JSONL, list items for JSON, dialogue ids for long tables, and 1 for a file that
    cannot be read at all (it is quarantined as one record).
    """
    suffix = file_suffix(name)
    try:
        if suffix == "jsonl":
            return sum(1 for line in data.removeprefix(_BOM).splitlines() if line.strip())
        if suffix == "json":
            document = json.loads(data.removeprefix(_BOM).decode("utf-8"))
            return len(document) if isinstance(document, list) else 1
        if suffix in ("csv", "parquet"):
            source = io.BytesIO(data)
            frame = (
                pl.read_csv(source, infer_schema=False)
                if suffix == "csv"
                else pl.read_parquet(source)
            )
            if "dialogue_id" in frame.columns:
                return frame["dialogue_id"].n_unique()
    except (ValueError, pl.exceptions.PolarsError):
        pass  # unreadable: the whole file is one quarantined record
    return 1
