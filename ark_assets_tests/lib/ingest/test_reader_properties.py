"""Property tests of every dialogue reader: whatever the bytes, nothing raises and every record
is accounted for.

For each format (and an unknown extension) and any input — arbitrary bytes, corrupted valid
files, JSON of any shape with NUL, lone surrogates, over-long integers and deep nesting, long
tables with columns of any type — ``ingest_file`` returns, ``records read (count_records) =
accepted + quarantined``, every rejection names a known rule, and both tables of the batch can
be built and stored (every string valid UTF-8).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ark_assets.lib.ingest.batches import ingest_batch, store_batch
from ark_assets.lib.ingest.dialogues import EXCERPT_CHARS, Limits, Rule
from ark_assets.lib.ingest.formats import count_records, read_json_list, read_jsonl

FORMATS = ("jsonl", "json", "csv", "parquet", "txt")
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Characters that broke or nearly broke a batch: NUL, lone surrogates, a BOM, zero-width and
# bidi controls, line and paragraph separators, a non-BMP emoji, and chat-template text.
HOSTILE = ["\x00", "\ud800", "\udfff", "\ufeff", "\u200b", "\u202e", "\u2028", "\U0001f600"]
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(HOSTILE)), max_size=12) | st.sampled_from(
    ["<|im_start|>", "<tool_call>", "我头疼三天了", "I have a cough", " ", ""]
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)
TURN = st.fixed_dictionaries({"patient": TEXT | SCALARS, "doctor": TEXT | SCALARS})
DIALOGUE = st.one_of(
    st.lists(TURN, max_size=3),
    st.fixed_dictionaries(
        {"turns": st.lists(TURN, max_size=3) | JSON_VALUES},
        optional={
            "source": TEXT | SCALARS | st.lists(TEXT, max_size=2),
            "source_id": TEXT | SCALARS,
            "language": st.sampled_from(["zh", "en", "zh-CN", "cn", ""]) | SCALARS,
        },
    ),
    st.fixed_dictionaries(
        {"model": TEXT, "src": st.fixed_dictionaries({"conversation": st.lists(TURN, max_size=2)})}
    ),
    JSON_VALUES,
)
# Raw JSON fragments json.dumps cannot write: too deep for the parser, past Python's int limit.
FRAGMENTS = st.sampled_from(
    [
        "[" * 3000 + "]" * 3000,
        '{"turns": [' * 700 + "]}" * 700,
        "9" * 5000,
        '{"turns": [{"patient": ' + "-" + "1" * 4301 + ', "doctor": "d"}]}',
        '"\\ud800"',
        '{"turns": [{"patient": "a\\u0000", "doctor": "b"}]}',
    ]
)


def _serialise(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    # Unescaped lone surrogates become bytes that are not UTF-8 (another hostile input).
    return text.encode("utf-8", "surrogatepass")


@st.composite
def json_files(draw: st.DrawFn, suffix: str) -> bytes:
    ascii_only = draw(st.booleans())
    records = draw(
        st.lists(
            st.one_of(
                DIALOGUE.map(lambda v: _serialise(v, ascii_only)),
                FRAGMENTS.map(str.encode),
                st.binary(max_size=12),
            ),
            max_size=5,
        )
    )
    if suffix == "jsonl":
        body = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"])).join(records)
    else:
        body = draw(st.sampled_from([b"[", b" [", b"{"])) + b",".join(records)
        body += draw(st.sampled_from([b"]", b"", b"] x", b"]]"]))
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + body


CELL_KINDS: dict[str, st.SearchStrategy[Any]] = {
    "text": TEXT.filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t)),
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=True, allow_infinity=True),
    "bool": st.booleans(),
    "list": st.lists(st.sampled_from(["a", "b", "patient"]), max_size=2),
}


@st.composite
def long_tables(draw: st.DrawFn) -> pl.DataFrame:
    n_rows = draw(st.integers(0, 8))
    names = ["dialogue_id", "turn_index", "role", "text", "source", "language"]
    kept = [n for n in names if draw(st.booleans()) or (n in names[:4] and draw(st.booleans()))]
    columns: dict[str, pl.Series] = {}
    for name in kept:
        kind = draw(st.sampled_from(sorted(CELL_KINDS)))
        if name in ("role", "dialogue_id") and draw(st.booleans()):
            values = draw(
                st.lists(
                    st.sampled_from(["patient", "doctor", "a", None]),
                    min_size=n_rows,
                    max_size=n_rows,
                )
            )
        elif name == "turn_index" and draw(st.booleans()):
            values = draw(
                st.lists(st.sampled_from([0, 1, 2, 0.5, None]), min_size=n_rows, max_size=n_rows)
            )
        else:
            values = draw(st.lists(st.none() | CELL_KINDS[kind], min_size=n_rows, max_size=n_rows))
        columns[name] = pl.Series(name, values, strict=False)
    return pl.DataFrame(columns)


def _csv(frame: pl.DataFrame) -> bytes:
    """Any frame as CSV text: nested cells written as their repr (CSV has no lists)."""
    flat = frame.with_columns(
        pl.col(c).map_elements(repr, return_dtype=pl.Utf8)
        for c, dtype in frame.schema.items()
        if dtype.is_nested()
    )
    buffer = io.BytesIO()
    flat.write_csv(buffer)
    return buffer.getvalue()


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def assert_accounted(name: str, data: bytes) -> None:
    frames = ingest_batch("b__0123456789ab", name, data, "0" * 64, Limits(), datetime.now(UTC))
    records_read = frames.summary.records_read
    assert records_read == count_records(name, data)
    assert frames.accepted.height + frames.quarantined.height == records_read
    for rule, message, excerpt in frames.quarantined.select("rule", "message", "excerpt").rows():
        assert rule in Rule.ALL and message
        assert len(excerpt) <= EXCERPT_CHARS + 1 and "\x00" not in excerpt
    with duckdb.connect() as conn:
        store_batch(
            conn,
            "ark",
            "b__0123456789ab",
            {"raw_dialogues": frames.accepted, "quarantined_records": frames.quarantined},
        )


@PROPERTY
@given(st.sampled_from(FORMATS), st.binary(max_size=400))
def test_any_bytes(suffix: str, data: bytes) -> None:
    assert_accounted(f"f.{suffix}", data)


@PROPERTY
@given(st.sampled_from(["jsonl", "json"]).flatmap(lambda s: st.tuples(st.just(s), json_files(s))))
def test_any_json_records(case: tuple[str, bytes]) -> None:
    suffix, data = case
    assert_accounted(f"f.{suffix}", data)


@PROPERTY
@given(long_tables(), st.sampled_from(["csv", "parquet"]))
def test_any_long_table(frame: pl.DataFrame, suffix: str) -> None:
    assert_accounted(f"t.{suffix}", _csv(frame) if suffix == "csv" else _parquet(frame))


@PROPERTY
@given(long_tables(), st.sampled_from(["csv", "parquet"]), st.data())
def test_corrupted_long_table(frame: pl.DataFrame, suffix: str, data: st.DataObject) -> None:
    raw = bytearray(_csv(frame) if suffix == "csv" else _parquet(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    assert_accounted(f"t.{suffix}", bytes(raw[:cut] if data.draw(st.booleans()) else raw))


@PROPERTY
@given(st.binary(max_size=300) | json_files("jsonl"))
def test_shared_readers_never_raise(data: bytes) -> None:
    """read_jsonl and read_json_list also serve the knowledge-base and evaluation importers."""
    lines = list(read_jsonl(data))
    assert len(lines) == count_records("f.jsonl", data)
    items = list(read_json_list(data, "records"))
    assert len(items) == count_records("f.json", data)
