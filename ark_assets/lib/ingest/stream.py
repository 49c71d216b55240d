"""A dialogue file read in chunks of whole records: bounded memory, and a fast path for the
records that are plainly valid.

The whole-file readers in ``formats`` define what is accepted and how a record is rejected.
This module changes only how fast and in how much memory that verdict is reached:

- **Chunks**: a JSONL file is read in slices of whole lines (``CHUNK_BYTES``), each turned into
  the ``raw_dialogues`` columns and quarantine rows of its records before the next is read, so
  memory depends on the chunk size and the longest line, not on the file. JSON, CSV and Parquet
  files are one chunk (a JSON list or a table cannot be split without parsing it whole).
- **Fast path**: a line is parsed with orjson and accepted by ``fast_dialogue`` when it is a
  plainly valid dialogue; anything else (orjson refuses it, a rule might apply, a field needs
  converting) goes through the reference path (``formats.parse_jsonl_line`` and
  ``dialogues.validate_record``), so every rejection, and every accepted row, is exactly what the
  whole-file reader gives (``ark_assets_tests/lib/ingest/test_stream.py`` compares them).
- **Columns**: accepted rows are built column by column (``encode_turns``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import polars as pl

from ark_assets.lib.ingest import tables
from ark_assets.lib.ingest.dialogues import (
    _INVALID_CHARACTERS,
    _RESERVED,
    Dialogue,
    Limits,
    Rejection,
    is_blank,
    validate_record,
)
from ark_assets.lib.ingest.formats import (
    _BOM,
    MAX_JSON_DEPTH,
    count_records,
    file_suffix,
    ingest_file,
    parse_jsonl_line,
)
from ark_assets.lib.ingest.inbox import open_regular
from ark_assets.lib.language import normalise_language
from ark_assets.lib.tables import frame, schema_of

# Bytes of whole lines read at a time: ~5,000 dialogues of the samples' size.
CHUNK_BYTES = 8 << 20
_MIN_READ = 4096
_SOURCE_FORMAT = "jsonl"


@dataclass
class Chunk:
    """What one slice of a file gave: accepted rows (``raw_dialogues`` columns), rejections,
    and how many records it held (counted apart from the parser)."""

    accepted: pl.DataFrame
    rejections: list[Rejection]
    records_read: int
    source_format: str


@dataclass
class Summary:
    """Totals over a file's chunks, for the asset's metadata and the accounting check."""

    source_format: str = "unknown"
    records_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    forgotten: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    rule_counts: dict[str, int] = field(default_factory=dict)

    def add(self, chunk: Chunk, kept: pl.DataFrame) -> None:
        self.source_format = chunk.source_format
        self.records_read += chunk.records_read
        self.accepted += kept.height
        self.quarantined += len(chunk.rejections)
        self.forgotten += chunk.accepted.height - kept.height
        for language, n in kept.group_by("language").len().iter_rows():
            self.languages[language] = self.languages.get(language, 0) + n
        for rejection in chunk.rejections:
            self.rule_counts[rejection.rule] = self.rule_counts.get(rejection.rule, 0) + 1


@dataclass(frozen=True)
class Where:
    """The columns every row of a batch shares."""

    batch: str
    source_file: str
    file_sha256: str
    ingested_at: datetime


def read_chunks(
    source: Path | bytes, where: Where, limits: Limits, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[Chunk]:
    """The chunks of a file (a landed path, or its bytes), in file order; what it is read as
    comes from ``where.source_file``'s extension."""
    if file_suffix(where.source_file) != "jsonl":
        data = source if isinstance(source, bytes) else source.read_bytes()
        yield _whole_file_chunk(where, data, limits)
        return
    with io.BytesIO(source) if isinstance(source, bytes) else open_regular(source) as handle:
        first_line = 0
        for piece in line_slices(handle, chunk_bytes):
            if first_line == 0:
                piece = piece.removeprefix(_BOM)
            lines = piece.splitlines()
            yield jsonl_chunk(where, lines, first_line, limits)
            first_line += len(lines)


def line_slices(handle: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    """The file's bytes in slices of about ``chunk_bytes`` that end just after a newline (the
    last one wherever the file ends), so no line is split and ``splitlines`` of each slice, one
    after the other, gives the lines of the whole file."""
    pending = b""
    while True:
        # Up to a chunk; past it (a line longer than a chunk), reads doubling until its end.
        block = handle.read(max(chunk_bytes - len(pending), len(pending), _MIN_READ))
        if not block:
            if pending:
                yield pending
            return
        pending += block
        cut = pending.rfind(b"\n") + 1
        if cut and len(pending) >= chunk_bytes:
            yield pending[:cut]
            pending = pending[cut:]


def jsonl_chunk(where: Where, lines: list[bytes], first_line: int, limits: Limits) -> Chunk:
    """The rows of ``lines`` (line ``first_line`` of the file onwards)."""
    columns = _Columns()
    rejections: list[Rejection] = []
    records = records_in(lines)
    for index, line in enumerate(lines, first_line):
        if not line.strip():
            continue
        dialogue = _fast(index, line, limits)
        if dialogue is None:
            parsed = parse_jsonl_line(index, line)
            outcome = (
                parsed
                if isinstance(parsed, Rejection)
                else validate_record(index, parsed[1], _SOURCE_FORMAT, limits)
            )
            if isinstance(outcome, Rejection):
                rejections.append(outcome)
                continue
            dialogue = outcome
        columns.add(dialogue)
    return Chunk(columns.frame(where), rejections, records, _SOURCE_FORMAT)


def records_in(lines: list[bytes]) -> int:
    """Records among JSONL lines (the non-blank ones), counted apart from the parse: the other
    side of the ``records read = accepted + quarantined`` check."""
    return sum(1 for line in lines if line.strip())


def _whole_file_chunk(where: Where, data: bytes, limits: Limits) -> Chunk:
    result = ingest_file(where.source_file, data, limits)
    columns = _Columns()
    for dialogue in result.dialogues:
        columns.add(dialogue)
    return Chunk(
        columns.frame(where),
        result.rejections,
        count_records(where.source_file, data),
        result.source_format,
    )


def _fast(index: int, line: bytes, limits: Limits) -> Dialogue | None:
    """The accepted dialogue of a plainly valid line, or None: then the reference path decides.

    orjson refuses what the standard library would reject or convert (NaN, infinities, lone
    surrogates, control characters, a BOM); it reads long integers as floats, so a record with
    a number where text may go is left to the reference path. A line with more brackets than
    the depth limit goes to the reference path too. Texts are checked one by one only when the
    line's bytes say a check could fail: an escape or ``<`` (a forbidden character or a
    chat-template token), or a string that starts empty, with whitespace or an invisible
    character (a blank text).
    """
    if line.count(b"[") + line.count(b"{") > MAX_JSON_DEPTH:
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    special = b"\\u" in line or b"\\/" in line or b"<" in line
    blank = _MAYBE_BLANK_START.search(line) is not None
    return fast_dialogue(index, value, limits, special, blank)


def fast_dialogue(
    index: int, value: Any, limits: Limits, check_text: bool, check_blank: bool = True
) -> Dialogue | None:
    """``value`` as an accepted dialogue when no rule can apply to it, else None.

    ``check_text``: look for forbidden characters and chat-template tokens; ``check_blank``:
    look for blank texts (both known absent when False)."""
    if type(value) is not dict or "src" in value:
        return None
    turns = value.get("turns")
    if type(turns) is not list or not turns or len(turns) > limits.max_turns:
        return None
    longest = limits.max_turn_chars
    for turn in turns:
        if type(turn) is not dict or len(turn) != 2:
            return None
        patient, doctor = turn.get("patient"), turn.get("doctor")
        if (
            type(patient) is not str
            or type(doctor) is not str
            or len(patient) > longest
            or len(doctor) > longest
        ):
            return None
    if check_blank and any(is_blank(text) for turn in turns for text in turn.values()):
        return None
    if check_text and any(
        _INVALID_CHARACTERS.search(text) or _RESERVED.search(text)
        for turn in turns
        for text in turn.values()
    ):
        return None
    declared = value.get("language")
    language = _declared_language(declared) if type(declared) is str else None
    source, source_id = value.get("source"), value.get("source_id")
    if language is None or not (_plain(source, check_text) and _plain(source_id, check_text)):
        return None  # undeclared (detected by the reference path), unsupported, or not text
    return Dialogue(index, turns, language, False, source, source_id, _SOURCE_FORMAT)


# A JSON string value that may be blank: empty, or starting with an escape, ASCII whitespace or
# the first byte of a character that is whitespace or invisible (``dialogues.is_blank``). In
# JSON text a quote inside a string is escaped, so ``:`` then a bare quote starts a value.
_MAYBE_BLANK_LEADS = bytes(
    sorted(
        {
            c.encode()[0]
            for c in map(chr, range(0x80, sys.maxunicode + 1))
            if not 0xD800 <= ord(c) < 0xE000 and (c.isspace() or unicodedata.category(c) == "Cf")
        }
    )
)
_MAYBE_BLANK_START = re.compile(
    rb':\s*"(?:["\s\\]|[' + b"".join(b"\\x%02x" % b for b in _MAYBE_BLANK_LEADS) + rb"])"
)


_declared_language = functools.lru_cache(maxsize=256)(normalise_language)


def _plain(value: Any, check_text: bool) -> bool:
    """A descriptive field the reference path would keep as it is."""
    if value is None:
        return True
    return type(value) is str and not (check_text and _INVALID_CHARACTERS.search(value))


class _Columns:
    """``raw_dialogues`` columns, one list each, filled dialogue by dialogue."""

    def __init__(self) -> None:
        self.names = (
            "record_index",
            "source",
            "source_id",
            "language",
            "language_detected",
            "source_format",
            "n_turns",
            "turns_json",
            "medark_key",
            "dialogue_sha256",
        )
        self.values: dict[str, list[Any]] = {name: [] for name in self.names}
        self._append = [self.values[name].append for name in self.names]

    def add(self, d: Dialogue) -> None:
        turns_json, key, digest = encode_turns(d.turns)
        row = (
            d.record_index,
            d.source,
            d.source_id,
            d.language,
            d.language_detected,
            d.source_format,
            len(d.turns),
            turns_json,
            key,
            digest,
        )
        for append, value in zip(self._append, row, strict=True):
            append(value)

    def frame(self, where: Where) -> pl.DataFrame:
        schema = schema_of(tables.RAW_DIALOGUES)
        n = len(self.values["record_index"])
        shared = {
            "batch": [where.batch] * n,
            "source_file": [where.source_file] * n,
            "file_sha256": [where.file_sha256] * n,
            "ingested_at": [where.ingested_at] * n,
        }
        data = {**shared, **self.values}
        if n == 0:
            return frame([], tables.RAW_DIALOGUES)
        # turns_json arrives as UTF-8 bytes: decoded by polars, column-wide, not text by text.
        binary = {**schema, "turns_json": pl.Binary}
        rows = pl.DataFrame({c.name: data[c.name] for c in tables.RAW_DIALOGUES}, schema=binary)
        return rows.with_columns(pl.col("turns_json").cast(pl.Utf8))


def encode_turns(turns: list[dict[str, str]]) -> tuple[bytes, str, str]:
    """``(turns_json as UTF-8, medark_key, dialogue_sha256)`` of a dialogue, byte-identical to
    ``json.dumps(turns, ensure_ascii=False)``, ``hashing.medark_key(turns[0])`` and
    ``hashing.dialogue_sha256(turns)``.

    ``turns_json`` is orjson's compact text with json.dumps' separators put back: orjson escapes
    strings exactly as json.dumps does with ``ensure_ascii=False`` (tested over every code
    point), and in its output ``{"`` and ``,"`` are never inside a string (a quote in a string
    is always escaped), so the replacements touch only structure.
    """
    turns_json = (
        orjson.dumps(turns)
        .replace(b'},{"', b'}, {"')
        .replace(b'{"patient":', b'{"patient": ')
        .replace(b'{"doctor":', b'{"doctor": ')
        .replace(b',"doctor":', b', "doctor": ')
        .replace(b',"patient":', b', "patient": ')
    )
    key = hashlib.sha256(str(turns[0]).encode()).hexdigest()
    pairs = repr([(turn["patient"], turn["doctor"]) for turn in turns])
    return turns_json, key, hashlib.sha256(pairs.encode()).hexdigest()
