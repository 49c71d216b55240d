"""Readers for every accepted dialogue file format.

Each reader turns a file's bytes into a stream of ``(record_index, raw_record)`` pairs, or
``Rejection``s for what cannot even be parsed (a truncated JSON file, a line that is not UTF-8,
a value nested too deep). ``validate_record`` then decides on each parsed record. No bytes make
a reader raise: whatever cannot be read is a rejection, so ``records read = accepted +
quarantined`` holds for every file (property-tested in ``ark_assets_tests/lib/ingest``). See
docs/data-formats.md.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl

from ark_assets.lib.ingest.dialogues import (
    Dialogue,
    Limits,
    Rejection,
    Rule,
    excerpt_of,
    shown_name,
    shown_names,
    validate_record,
)

Parsed = tuple[int, Any] | Rejection

LONG_TABLE_COLUMNS = ("dialogue_id", "turn_index", "role", "text")
_OPTIONAL_COLUMNS = ("source", "language")
_BOM = b"\xef\xbb\xbf"
# A dialogue record is 4 levels deep (object > turns > turn > text), a MedArk result item 5.
# Python's JSON parser gives up near 1000 levels, at a depth that depends on the caller's stack:
# a fixed, much lower bound makes the verdict the same wherever the file is read.
MAX_JSON_DEPTH = 64
# Python refuses to turn longer integers into text (sys.get_int_max_str_digits(), CVE-2020-10735).
_MAX_INT_DIGITS = 4300
# What a JSON document is made of, for finding a list's items without parsing them: a string
# (escapes included), a bracket or comma, a run of anything else, or an unterminated quote.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]|[^\[\]{},"]+|"', re.DOTALL)
# A turn_index cell of a CSV (all cells are text): an integer that fits in 64 bits.
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
# Polars raises its own errors, OSError and ValueError subclasses, and (on inputs its Rust core
# did not expect) a PanicException that derives from BaseException only.
_TABLE_ERRORS = (Exception, pl.exceptions.PanicException)


@dataclass(frozen=True)
class LongNumber:
    """A JSON integer too long to convert to text: kept as its digit count, so the record holding
    it is rejected by type (a number where text belongs) instead of crashing the parser."""

    digits: int


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
        if line.strip():
            yield parse_jsonl_line(index, line)


def parse_jsonl_line(index: int, line: bytes) -> Parsed:
    """Line ``index`` (0-based, non-blank) of a JSONL file, parsed or rejected."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(
            index,
            Rule.NOT_UTF8,
            f"line {index + 1} is not UTF-8 ({err.reason} at byte {err.start}); "
            "re-export the file as UTF-8",
            excerpt_of(line),
        )
    try:
        value = _loads(text)
    except json.JSONDecodeError as err:
        return Rejection(
            index,
            Rule.UNPARSEABLE_RECORD,
            f"line {index + 1} is not valid JSON: {err.msg} at column {err.colno}",
            excerpt_of(text),
        )
    return _within_depth(index, value, f"line {index + 1}", text, _few_brackets(text))


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
    """The items of a file holding one JSON list; ``expected`` names them in messages.

    A file that is not valid JSON is one rejected record (nothing in it is read); an item nested
    more than ``MAX_JSON_DEPTH`` levels is rejected on its own and the other items are read.
    """
    text = decode_utf8(data)
    items = text if isinstance(text, Rejection) else _json_list_items(text, expected)
    if isinstance(items, Rejection):
        yield items
        return
    yield from items


def _json_list_items(text: str, expected: str) -> list[Parsed] | Rejection:
    """Every item of the JSON list ``text`` (parsed, or rejected as too deep), or the rejection
    of the whole file."""
    try:
        document = _loads(text)
    except json.JSONDecodeError as err:
        return _not_json(text, err)
    if document is _TOO_DEEP:
        return _items_one_by_one(text)
    if not isinstance(document, list):
        return Rejection(
            None,
            Rule.WRONG_SHAPE,
            f"a .json file must hold a list of {expected}, got {type(document).__name__}",
            excerpt_of(text),
        )
    shallow = _few_brackets(text)
    return [_within_depth(i, v, f"item {i}", v, shallow) for i, v in enumerate(document)]


def _items_one_by_one(text: str) -> list[Parsed] | Rejection:
    """The list's items parsed one at a time, when some item is too deep for the parser."""
    spans = _list_item_spans(text)
    if spans is None:
        return Rejection(
            None,
            Rule.UNPARSEABLE_FILE,
            f"file nests values more than {MAX_JSON_DEPTH} levels deep and is not a JSON list "
            "whose items could be read one by one; nothing in it was read",
            excerpt_of(text),
        )
    items: list[Parsed] = []
    for index, (start, end) in enumerate(spans):
        piece = text[start:end]
        try:
            value = _loads(piece)
        except json.JSONDecodeError as err:
            return _not_json(text, json.JSONDecodeError(err.msg, text, start + err.pos))
        items.append(_within_depth(index, value, f"item {index}", piece, _few_brackets(piece)))
    return items


_TOO_DEEP = object()  # what _loads returns for a value nested deeper than the parser follows


def _loads(text: str) -> Any:
    """``json.loads`` that keeps over-long integers as ``LongNumber`` and returns ``_TOO_DEEP``
    instead of raising RecursionError; invalid JSON still raises JSONDecodeError."""
    try:
        return json.loads(text, parse_int=_json_int)
    except RecursionError:
        return _TOO_DEEP


def _json_int(digits: str) -> int | LongNumber:
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        return LongNumber(len(digits.lstrip("-")))
    return int(digits)


def _few_brackets(text: str) -> bool:
    """True when ``text`` holds too few brackets to nest past the limit (no walk needed)."""
    return text.count("[") + text.count("{") <= MAX_JSON_DEPTH


def _within_depth(index: int, value: Any, where: str, raw: Any, shallow: bool) -> Parsed:
    """``(index, value)``, or the rejection of a value nested deeper than ``MAX_JSON_DEPTH``
    (``shallow``: its text is known to be too short in brackets for that)."""
    if value is _TOO_DEEP or (not shallow and _deeper_than(value, MAX_JSON_DEPTH)):
        return Rejection(
            index,
            Rule.WRONG_SHAPE,
            f"{where} nests values more than {MAX_JSON_DEPTH} levels deep; a dialogue record is "
            "an object holding a list of {patient, doctor} turns",
            excerpt_of(raw),
        )
    return index, value


def _deeper_than(value: Any, limit: int) -> bool:
    """True when lists/objects nest more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _list_item_spans(text: str) -> list[tuple[int, int]] | None:
    """Where each item of the top-level JSON list ``text`` starts and ends, found by scanning
    strings and brackets without parsing the items (so without recursion); None when ``text`` is
    not one list with non-empty items."""
    spans: list[tuple[int, int]] = []
    depth, start, closed = 0, 0, False
    for token in _JSON_TOKEN.finditer(text):
        value = token.group()
        if depth == 0:
            if value.isspace():
                continue
            if closed or value != "[":
                return None
            depth, start = 1, token.end()
        elif value == '"':
            return None  # an unterminated string
        elif value in "[{":
            depth += 1
        elif value in "]}":
            depth -= 1
            if depth == 0:
                closed = True
                if spans or text[start : token.start()].strip():
                    spans.append((start, token.start()))
        elif value == "," and depth == 1:
            spans.append((start, token.start()))
            start = token.end()
    if not closed or any(not text[a:b].strip() for a, b in spans):
        return None
    return spans


def _not_json(text: str, err: json.JSONDecodeError) -> Rejection:
    return Rejection(
        None,
        Rule.UNPARSEABLE_FILE,
        f"file is not valid JSON: {err.msg} at line {err.lineno} column {err.colno} "
        "(truncated upload?); nothing in it was read",
        excerpt_of(text[max(0, err.pos - 120) : err.pos + 120]),
    )


def read_json(data: bytes) -> Iterator[Parsed]:
    """A JSON list of dialogues, MedArk evaluation items or MedArk result items."""
    return read_json_list(data, "dialogues")


def read_csv(data: bytes) -> Iterator[Parsed]:
    """A long table: one row per utterance (dialogue_id, turn_index, role, text)."""
    return _read_long_table("csv", data)


def read_parquet(data: bytes) -> Iterator[Parsed]:
    """The long table as Parquet."""
    return _read_long_table("parquet", data)


def _read_table(suffix: str, data: bytes) -> pl.DataFrame:
    """The file as a frame: CSV cells all as text (types are checked per record), Parquet as
    typed. Raises whatever polars raises (``_TABLE_ERRORS``)."""
    source = io.BytesIO(data)
    if suffix == "csv":
        return pl.read_csv(source, infer_schema=False, encoding="utf8")
    return pl.read_parquet(source)


def _read_long_table(suffix: str, data: bytes) -> Iterator[Parsed]:
    try:
        frame = _read_table(suffix, data)
        missing = [c for c in LONG_TABLE_COLUMNS if c not in frame.columns]
        # Grouped before anything is yielded: a column polars cannot group rejects the file.
        groups = [] if missing else _dialogue_groups(frame)
    except _TABLE_ERRORS as err:
        yield _unparseable_table(err, data)
        return
    if missing:
        yield Rejection(
            None,
            Rule.WRONG_KEYS,
            f"long table lacks columns {missing}; required: {list(LONG_TABLE_COLUMNS)}",
            excerpt_of(str(frame.columns)),
        )
        return
    for index, group in enumerate(groups):
        yield _long_table_dialogue(index, group)


def _unparseable_table(err: BaseException, data: bytes) -> Rejection:
    return Rejection(
        None,
        Rule.UNPARSEABLE_FILE,
        # The parser's message quotes the offending rows: they belong in the excerpt only.
        f"file is not a readable table ({type(err).__name__}); a long table is a UTF-8 CSV or "
        f"Parquet file with the columns {list(LONG_TABLE_COLUMNS)}",
        excerpt_of(data[:120]),
    )


def _dialogue_groups(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """One dict of column -> list of values per dialogue_id, in order of first appearance.

    Values stay as the file typed them (a Parquet column may hold lists, floats, bytes …):
    each record is then judged on its own values, so one bad dialogue never sinks the file.
    """
    columns = [*LONG_TABLE_COLUMNS, *(c for c in _OPTIONAL_COLUMNS if c in frame.columns)]
    grouped = frame.select(columns).group_by("dialogue_id", maintain_order=True).agg(pl.all())
    return list(grouped.iter_rows(named=True))


def _long_table_dialogue(index: int, group: dict[str, Any]) -> Parsed:
    dialogue_id = group["dialogue_id"]
    raw_rows = list(zip(group["turn_index"], group["role"], group["text"], strict=True))
    excerpt = excerpt_of({"dialogue_id": dialogue_id, "rows": raw_rows[:4]})
    if not isinstance(dialogue_id, str | int | float | None) or isinstance(dialogue_id, bool):
        return Rejection(
            index,
            Rule.WRONG_TYPE,
            f"dialogue_id must be text or an integer, got {type(dialogue_id).__name__}",
            excerpt,
        )
    numbers = [_whole_number(turn) for turn, _, _ in raw_rows]
    if any(n is None for n in numbers):
        return Rejection(
            index,
            Rule.WRONG_TYPE,
            "turn_index must be a whole number on every row (a fraction such as 0.5 is neither "
            "rounded nor truncated: fix the export)",
            excerpt,
        )
    if not all(isinstance(role, str) for _, role, _ in raw_rows):
        return Rejection(
            index, Rule.WRONG_TYPE, "role must be text (patient or doctor) on every row", excerpt
        )
    turn_numbers = [n for n in numbers if n is not None]  # all of them, checked above
    rows = sorted(zip(turn_numbers, raw_rows, strict=True), key=lambda row: row[0])
    roles = [role.strip().lower() for _, (_, role, _) in rows]
    expected = ["patient", "doctor"] * (len(rows) // 2 + 1)
    if roles != expected[: len(roles)] or len(roles) % 2:
        return Rejection(
            index,
            Rule.ROLE_ORDER,
            f"dialogue {shown_name(dialogue_id)}: roles must alternate patient, doctor and end "
            f"with a doctor reply; got {shown_names(roles)}",
            excerpt,
        )
    texts = [text for _, (_, _, text) in rows]
    turns = [{"patient": texts[i], "doctor": texts[i + 1]} for i in range(0, len(texts), 2)]
    record: dict[str, Any] = {"source_id": dialogue_id, "turns": turns}
    for optional in _OPTIONAL_COLUMNS:
        values = _distinct(v for v in group.get(optional, []) if v is not None)
        if len(values) == 1:
            record[optional] = values[0]
    return index, record


def _whole_number(value: Any) -> int | None:
    """A turn_index cell as an integer; None unless it is one (0.4 is not turn 0)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral_value() else None
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def _distinct(values: Iterable[Any]) -> list[Any]:
    """The distinct values in order; lists and other unhashable cells compared by their repr."""
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(f"{type(value).__name__}:{value!r}", value)
    return list(seen.values())


_READERS: dict[str, tuple[str, Callable[[bytes], Iterator[Parsed]]]] = {
    "jsonl": ("jsonl", read_jsonl),
    "json": ("json", read_json),
    "csv": ("long_table_csv", read_csv),
    "parquet": ("long_table_parquet", read_parquet),
}
SUPPORTED_EXTENSIONS = tuple(_READERS)


def count_records(name: str, data: bytes) -> int:
    """How many records a file holds, counted without validating them.

    The other side of the ``records read = accepted + quarantined`` check: non-blank lines for
    JSONL, list items for JSON, distinct dialogue ids for a long table with every required
    column, and 1 for a file that cannot be read as records at all (it is quarantined as one).
    """
    suffix = file_suffix(name)
    if suffix == "jsonl":
        return sum(1 for line in data.removeprefix(_BOM).splitlines() if line.strip())
    if suffix == "json":
        text = decode_utf8(data)
        items = text if isinstance(text, Rejection) else _json_list_items(text, "records")
        return 1 if isinstance(items, Rejection) else len(items)
    if suffix in ("csv", "parquet"):
        try:
            frame = _read_table(suffix, data)
            if all(c in frame.columns for c in LONG_TABLE_COLUMNS):
                return frame["dialogue_id"].n_unique()
        except _TABLE_ERRORS:
            pass  # unreadable: the whole file is one quarantined record
    return 1
