"""Every accepted format parses, every malformed fixture lands in quarantine under its rule."""

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from ark_assets.lib.ingest.batches import ingest_batch
from ark_assets.lib.ingest.dialogues import Dialogue, Limits, Rule
from ark_assets.lib.ingest.formats import count_records, ingest_file
from ark_assets_tests.conftest import BAD_INPUTS, SAMPLES

TURNS = [
    {"patient": "我头疼三天了", "doctor": "发烧吗？"},
    {"patient": "不发烧", "doctor": "多休息。"},
]

# fixture -> (accepted record indexes, {record index: rule}); None = the whole file
BAD_INPUT_EXPECTATIONS: dict[str, tuple[list[int], dict[int | None, str]]] = {
    "01_truncated_eval.json": ([], {None: Rule.UNPARSEABLE_FILE}),
    "02_truncated_last_line.jsonl": (
        [0],
        {2: Rule.UNPARSEABLE_RECORD, 3: Rule.UNPARSEABLE_RECORD},
    ),
    "03_wrong_keys.jsonl": ([], {i: Rule.WRONG_KEYS for i in range(5)}),
    "04_empty_turns.jsonl": (
        [],
        {
            0: Rule.NO_TURNS,
            1: Rule.EMPTY_TEXT,
            2: Rule.EMPTY_TEXT,
            3: Rule.EMPTY_TEXT,
            4: Rule.NO_TURNS,
        },
    ),
    "05_non_utf8.jsonl": ([0], {1: Rule.NOT_UTF8, 2: Rule.NOT_UTF8}),
    "06_duplicates.jsonl": ([0, 1, 2, 3, 4], {}),
    "07_extremely_long_turn.jsonl": ([], {0: Rule.TEXT_TOO_LONG}),
    "08_html_script_injection.jsonl": ([0], {1: Rule.RESERVED_TOKEN, 2: Rule.RESERVED_TOKEN}),
    "09_phi_like_FAKE.jsonl": ([0, 1], {}),
    "10_wrong_types.jsonl": (
        [],
        {
            0: Rule.WRONG_SHAPE,
            1: Rule.WRONG_SHAPE,
            2: Rule.WRONG_TYPE,
            3: Rule.WRONG_SHAPE,
            4: Rule.WRONG_SHAPE,
            5: Rule.WRONG_SHAPE,
            6: Rule.WRONG_SHAPE,
        },
    ),
    "11_bom_crlf_nan_mixed_model.json": ([0, 1, 2, 3], {}),
}


def test_every_fixture_has_an_expectation() -> None:
    fixtures = {p.name for p in BAD_INPUTS.iterdir() if p.suffix in (".json", ".jsonl")}
    assert fixtures == set(BAD_INPUT_EXPECTATIONS)


@pytest.mark.parametrize("name", sorted(BAD_INPUT_EXPECTATIONS))
def test_bad_input_quarantined_by_rule_and_good_records_kept(name: str) -> None:
    data = (BAD_INPUTS / name).read_bytes()
    accepted, rules = BAD_INPUT_EXPECTATIONS[name]
    result = ingest_file(name, data, Limits())
    assert [d.record_index for d in result.dialogues] == accepted
    assert {r.record_index: r.rule for r in result.rejections} == rules
    assert result.records_read == count_records(name, data)
    for rejection in result.rejections:
        assert rejection.message and len(rejection.excerpt) <= 241


def test_rejection_messages_name_the_line_and_fix() -> None:
    result = ingest_file("x.jsonl", (BAD_INPUTS / "05_non_utf8.jsonl").read_bytes(), Limits())
    assert "line 2 is not UTF-8" in result.rejections[0].message
    assert "re-export" in result.rejections[0].message


def test_samples_are_fully_accepted_with_declared_language() -> None:
    for path, language in (
        (SAMPLES / "dialogues_zh_sample.jsonl", "zh"),
        (SAMPLES / "dialogues_en_sample.jsonl", "en"),
    ):
        result = ingest_file(path.name, path.read_bytes(), Limits())
        assert len(result.dialogues) == 300 and not result.rejections
        assert {d.language for d in result.dialogues} == {language}
        assert all(d.source and d.source_id for d in result.dialogues)


def _one(name: str, payload: bytes) -> Dialogue:
    result = ingest_file(name, payload, Limits())
    assert not result.rejections, result.rejections
    (dialogue,) = result.dialogues
    return dialogue


def test_json_list_of_bare_dialogues_detects_language() -> None:
    dialogue = _one("d.json", json.dumps([TURNS], ensure_ascii=False).encode())
    assert dialogue.turns == TURNS
    assert dialogue.language == "zh" and dialogue.language_detected


def test_jsonl_object_with_conversation_key_and_metadata() -> None:
    line = {"conversation": TURNS, "source": "s", "source_id": 7, "language": "zh-CN"}
    dialogue = _one("d.jsonl", json.dumps(line, ensure_ascii=False).encode())
    assert (dialogue.source, dialogue.source_id, dialogue.language) == ("s", "7", "zh")


def test_medark_eval_items_and_result_files() -> None:
    item = {"instruction": "患者：头疼", "conversation": TURNS}
    assert _one("eval.json", json.dumps([item], ensure_ascii=False).encode()).turns == TURNS
    result = {"model": "回答", "src": item}
    assert _one("res.json", json.dumps([result], ensure_ascii=False).encode()).turns == TURNS


def test_key_order_is_kept_as_read() -> None:
    line = '[{"doctor": "发烧吗？", "patient": "我头疼三天了"}]'
    assert list(_one("d.jsonl", line.encode()).turns[0]) == ["doctor", "patient"]


def _long_table(rows: list[tuple[str, int, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["dialogue_id", "turn_index", "role", "text"], orient="row")


LONG_ROWS = [
    ("a", 1, "doctor", "发烧吗？"),
    ("a", 0, "patient", "我头疼三天了"),
    ("a", 2, "patient", "不发烧"),
    ("a", 3, "doctor", "多休息。"),
    ("b", 0, "patient", "I have a cough"),
    ("b", 1, "patient", "and a fever"),
]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_long_table_groups_sorts_and_checks_role_order(suffix: str) -> None:
    buffer = io.BytesIO()
    frame = _long_table(LONG_ROWS)
    frame.write_csv(buffer) if suffix == "csv" else frame.write_parquet(buffer)
    result = ingest_file(f"t.{suffix}", buffer.getvalue(), Limits())
    (dialogue,) = result.dialogues
    assert dialogue.turns == TURNS and dialogue.source_id == "a"
    assert [(r.record_index, r.rule) for r in result.rejections] == [(1, Rule.ROLE_ORDER)]
    assert result.records_read == count_records(f"t.{suffix}", buffer.getvalue()) == 2


def test_long_table_missing_columns_rejects_file() -> None:
    result = ingest_file("t.csv", b"id,text\n1,hi\n", Limits())
    assert [(r.record_index, r.rule) for r in result.rejections] == [(None, Rule.WRONG_KEYS)]


def test_unknown_extension_is_quarantined_not_ignored() -> None:
    result = ingest_file("notes.txt", b"hello", Limits())
    assert [r.rule for r in result.rejections] == [Rule.UNSUPPORTED_FORMAT]


@pytest.mark.parametrize(
    ("limits", "rule"),
    [(Limits(max_turn_chars=5), Rule.TEXT_TOO_LONG), (Limits(max_turns=1), Rule.TOO_MANY_TURNS)],
)
def test_limits_are_configurable(limits: Limits, rule: str) -> None:
    result = ingest_file("d.json", json.dumps([TURNS]).encode(), limits)
    assert [r.rule for r in result.rejections] == [rule]


def test_invalid_language_code_names_the_fix() -> None:
    line = json.dumps({"turns": TURNS, "language": "cn"}, ensure_ascii=False)
    (rejection,) = ingest_file("d.jsonl", line.encode(), Limits()).rejections
    assert rejection.rule == Rule.INVALID_LANGUAGE and "'zh'" in rejection.message


def test_sample_files_exist_with_attribution() -> None:
    sources = (SAMPLES / "SOURCES.md").read_text()
    assert "CC BY 4.0" in sources and "MTS-Dialog" in sources
    assert Path(SAMPLES / "kb_qa_sample.jsonl").exists()


GOOD_LINE = json.dumps({"turns": TURNS}, ensure_ascii=False)
# One record each that crashed its whole batch (#18): the parser's recursion limit, Python's
# int-to-text limit, a lone surrogate (no UTF-8 encoding), NUL in a turn and in the source.
HOSTILE_RECORDS = {
    "deep": ("[" * 10_000 + "]" * 10_000, Rule.WRONG_SHAPE),
    "deep_field": (
        json.dumps({"turns": TURNS, "extra": 0})[:-2] + "[" * 200 + "]" * 200 + "}",
        Rule.WRONG_SHAPE,
    ),
    "long_int": ('{"turns": [], "source_id": ' + "9" * 5_000 + "}", Rule.NO_TURNS),
    "long_int_id": (
        json.dumps({"turns": TURNS})[:-1] + ', "source_id": ' + "9" * 5_000 + "}",
        Rule.WRONG_TYPE,
    ),
    "long_int_text": (
        '{"turns": [{"patient": ' + "9" * 5_000 + ', "doctor": "d"}]}',
        Rule.WRONG_TYPE,
    ),
    "surrogate": ('{"turns": [{"patient": "\\ud800", "doctor": "d"}]}', Rule.INVALID_CHARACTER),
    "nul_text": ('{"turns": [{"patient": "a\\u0000b", "doctor": "d"}]}', Rule.INVALID_CHARACTER),
    "nul_source": (
        json.dumps({"turns": TURNS, "source": "s\u0000"}, ensure_ascii=False),
        Rule.INVALID_CHARACTER,
    ),
}


def _batch(name: str, data: bytes) -> None:
    """The rows both ingest tables would store: building them encodes every string as UTF-8."""
    frames = ingest_batch("b", name, data, "0" * 64, Limits(), datetime.now(UTC))
    for table in (frames.accepted, frames.quarantined):
        table.write_parquet(io.BytesIO())


@pytest.mark.parametrize("case", sorted(HOSTILE_RECORDS))
@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_one_hostile_record_is_quarantined_and_the_others_kept(case: str, suffix: str) -> None:
    record, rule = HOSTILE_RECORDS[case]
    lines = [GOOD_LINE, record, GOOD_LINE]
    data = ("\n".join(lines) if suffix == "jsonl" else "[" + ",".join(lines) + "]").encode()
    result = ingest_file(f"f.{suffix}", data, Limits())
    assert [d.record_index for d in result.dialogues] == [0, 2]
    assert [(r.record_index, r.rule) for r in result.rejections] == [(1, rule)]
    assert result.records_read == count_records(f"f.{suffix}", data) == 3
    (rejection,) = result.rejections
    assert len(rejection.excerpt) <= 241 and "\x00" not in rejection.excerpt
    rejection.excerpt.encode("utf-8")  # storable: no lone surrogate left in it
    _batch(f"f.{suffix}", data)


def test_a_file_not_json_around_a_deep_item_is_one_record() -> None:
    data = b'[{"turns": []}, ' + b"[" * 10_000 + b"]" * 10_000 + b", {oops}]"
    result = ingest_file("f.json", data, Limits())
    assert [(r.record_index, r.rule) for r in result.rejections] == [(None, Rule.UNPARSEABLE_FILE)]
    assert count_records("f.json", data) == 1


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def test_parquet_with_list_typed_dialogue_id_and_source_is_quarantined_per_dialogue() -> None:
    data = _parquet(
        pl.DataFrame(
            {
                "dialogue_id": [["a"], ["a"], ["b"], ["b"]],
                "turn_index": [0, 1, 0, 1],
                "role": ["patient", "doctor"] * 2,
                "text": ["我头疼三天了", "发烧吗？", "咳嗽", "多久了？"],
            }
        )
    )
    result = ingest_file("t.parquet", data, Limits())
    assert [(r.record_index, r.rule) for r in result.rejections] == [
        (0, Rule.WRONG_TYPE),
        (1, Rule.WRONG_TYPE),
    ]
    assert "dialogue_id must be text" in result.rejections[0].message
    assert result.records_read == count_records("t.parquet", data) == 2

    frame = pl.DataFrame(
        {
            "dialogue_id": ["a", "a", "b", "b"],
            "turn_index": [0, 1, 0, 1],
            "role": ["patient", "doctor"] * 2,
            "text": ["我头疼三天了", "发烧吗？", "咳嗽", "多久了？"],
            "source": [["s"], ["s"], None, None],
        }
    )
    data = _parquet(frame)
    result = ingest_file("t.parquet", data, Limits())
    assert [d.source_id for d in result.dialogues] == ["b"]
    assert [(r.record_index, r.rule) for r in result.rejections] == [(0, Rule.WRONG_TYPE)]
    assert result.records_read == count_records("t.parquet", data) == 2
    _batch("t.parquet", data)


def test_fractional_turn_index_is_quarantined_not_truncated() -> None:
    data = _parquet(
        pl.DataFrame(
            {
                "dialogue_id": ["a", "a", "b", "b"],
                "turn_index": [0.4, 0.6, 0.0, 1.0],
                "role": ["patient", "doctor"] * 2,
                "text": ["我头疼三天了", "发烧吗？", "咳嗽", "多久了？"],
            }
        )
    )
    result = ingest_file("t.parquet", data, Limits())
    assert [d.source_id for d in result.dialogues] == ["b"]
    assert [(r.record_index, r.rule) for r in result.rejections] == [(0, Rule.WRONG_TYPE)]
    assert "whole number" in result.rejections[0].message


def test_nul_in_a_long_table_text_cell_is_quarantined() -> None:
    data = b"dialogue_id,turn_index,role,text\na,0,patient,hi\x00there\na,1,doctor,ok\n"
    result = ingest_file("t.csv", data, Limits())
    assert [(r.record_index, r.rule) for r in result.rejections] == [(0, Rule.INVALID_CHARACTER)]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_long_table_with_dialogue_id_but_no_turn_index_or_role_is_one_record(suffix: str) -> None:
    """#18 item 7: the count said 3 (dialogue ids), the reader 1 (the file): a false failure."""
    frame = pl.DataFrame({"dialogue_id": ["a", "b", "c"], "text": ["x", "y", "z"]})
    buffer = io.BytesIO()
    frame.write_csv(buffer) if suffix == "csv" else frame.write_parquet(buffer)
    result = ingest_file(f"t.{suffix}", buffer.getvalue(), Limits())
    assert [(r.record_index, r.rule) for r in result.rejections] == [(None, Rule.WRONG_KEYS)]
    assert result.records_read == count_records(f"t.{suffix}", buffer.getvalue()) == 1
