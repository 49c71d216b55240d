"""The streaming reader puts out exactly what the whole-file reader did (issue #15, item 5).

Three references: digests of the old reader's outputs on the shared fixtures, the samples and
hostile lines (``ingest_golden.json``, written before the streaming reader existed); the
reference path itself (``formats.ingest_file`` with the old row building) on generated files;
and the standard library's ``json.dumps`` and the hashing module for ``encode_turns``.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ark_assets.lib.hashing import dialogue_sha256, medark_key
from ark_assets.lib.ingest import stream
from ark_assets.lib.ingest.batches import ingest_batch
from ark_assets.lib.ingest.dialogues import Limits
from ark_assets.lib.ingest.formats import ingest_file
from ark_assets_tests.lib.ingest.golden import (
    CLOCK_COLUMNS,
    GOLDEN,
    NOW,
    fixture_files,
    hostile_jsonl,
    outputs,
)
from ark_assets_tests.lib.ingest.test_reader_properties import PROPERTY, json_files

GOLDEN_OUTPUTS = json.loads(GOLDEN.read_text())
FILES = {p.name: p.read_bytes() for p in fixture_files()} | {"hostile.jsonl": hostile_jsonl()}


def test_golden_covers_every_fixture() -> None:
    assert set(GOLDEN_OUTPUTS) == set(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_same_rows_as_the_whole_file_reader(name: str) -> None:
    assert outputs(name, FILES[name]) == GOLDEN_OUTPUTS[name]


@pytest.mark.parametrize("chunk_bytes", [1, 200, 4096])
def test_chunk_size_changes_nothing(chunk_bytes: int) -> None:
    """Small chunks (one line each at 1 byte) give the same rows and record indexes."""
    for name in ("hostile.jsonl", "dialogues_zh_sample.jsonl", "02_truncated_last_line.jsonl"):
        assert outputs(name, FILES[name], chunk_bytes) == GOLDEN_OUTPUTS[name], name


def test_most_sample_lines_take_the_fast_path() -> None:
    """The fast path is what makes the reader fast: the samples' lines must not all fall back."""
    lines = FILES["dialogues_en_sample.jsonl"].splitlines()
    fast = [stream._fast(i, line, Limits()) for i, line in enumerate(lines) if line.strip()]
    assert sum(d is not None for d in fast) >= 0.9 * len(fast)


def _reference_rows(name: str, data: bytes) -> tuple[list[dict], list[dict]]:
    """Rows as the whole-file reader built them: json.dumps and the hashing module."""
    result = ingest_file(name, data, Limits())
    accepted = [
        {
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
        }
        for d in result.dialogues
    ]
    rejected = [
        {"record_index": r.record_index, "rule": r.rule, "message": r.message, "excerpt": r.excerpt}
        for r in result.rejections
    ]
    return accepted, rejected


def _stream_rows(name: str, data: bytes) -> tuple[list[dict], list[dict]]:
    frames = ingest_batch("b", name, data, "0" * 64, Limits(), NOW)
    shared = ["batch", "source_file", "file_sha256", *CLOCK_COLUMNS]
    accepted = frames.accepted.drop(shared, strict=False).to_dicts()
    rejected = frames.quarantined.drop(shared, strict=False).to_dicts()
    return accepted, rejected


# Text that a structural rewrite or a repr shortcut would get wrong.
TRICKY = st.sampled_from(
    [
        '},{"patient":',
        ',"doctor":"',
        '{"doctor":',
        "I'm fine",
        'say "hi"',
        "both ' and \"",
        "back\\slash",
        "line\nbreak\ttab",
        "\x7f del",
        "\u00a0nbsp inside",
        "\u2028sep",
        "头疼\U0001f600",
        "a < b",
        "trailing\\",
    ]
)
TEXTS = st.one_of(TRICKY, st.text(min_size=1, max_size=20)).filter(lambda t: t.strip())
TURNS = st.lists(
    st.one_of(
        st.fixed_dictionaries({"patient": TEXTS, "doctor": TEXTS}),
        st.tuples(TEXTS, TEXTS).map(lambda t: {"doctor": t[0], "patient": t[1]}),
    ),
    min_size=1,
    max_size=4,
)
RECORDS = st.fixed_dictionaries(
    {"turns": TURNS},
    optional={
        "language": st.sampled_from(["zh", "en", "EN", "zh-CN", "xx"]),
        "source": st.none() | TEXTS | st.integers(),
        "source_id": st.none() | TEXTS | st.integers(-(2**70), 2**70) | st.floats(),
        "meta": st.dictionaries(TEXTS, TEXTS, max_size=2),
    },
)


@st.composite
def mostly_valid_jsonl(draw: st.DrawFn) -> bytes:
    ascii_only = draw(st.booleans())
    lines = [
        json.dumps(r, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        for r in draw(st.lists(RECORDS, min_size=1, max_size=6))
    ]
    return b"\n".join(lines) + draw(st.sampled_from([b"", b"\n"]))


@PROPERTY
@given(mostly_valid_jsonl() | json_files("jsonl"))
def test_generated_files_match_the_reference_path(data: bytes) -> None:
    assert _stream_rows("f.jsonl", data) == _reference_rows("f.jsonl", data)


@PROPERTY
@given(TURNS)
def test_encode_turns_is_byte_identical_to_json_and_hashing(turns: list[dict[str, str]]) -> None:
    assert stream.encode_turns(turns) == (
        json.dumps(turns, ensure_ascii=False).encode(),
        medark_key(turns[0]),
        dialogue_sha256(turns),
    )


@PROPERTY
@given(st.binary(max_size=300), st.integers(1, 64))
def test_line_slices_split_only_after_newlines(data: bytes, chunk_bytes: int) -> None:
    pieces = list(stream.line_slices(io.BytesIO(data), chunk_bytes))
    assert b"".join(pieces) == data
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])
    assert [line for piece in pieces for line in piece.splitlines()] == data.splitlines()


def test_a_file_is_read_one_chunk_at_a_time(tmp_path) -> None:
    """A file several chunks long is never read whole: each chunk holds about CHUNK_BYTES."""
    path = tmp_path / "big.jsonl"
    turn = {"patient": "头疼" * 50, "doctor": "多休息。"}
    line = json.dumps({"turns": [turn]}, ensure_ascii=False)
    path.write_text("\n".join([line] * 400) + "\n", encoding="utf-8")
    where = stream.Where("b", path.name, "0" * 64, datetime.now(UTC))
    sizes = [c.accepted.height for c in stream.read_chunks(path, where, Limits(), 8192)]
    assert len(sizes) > 10 and sum(sizes) == 400
    assert max(sizes) * len(line.encode()) < 2 * 8192 + len(line.encode())
