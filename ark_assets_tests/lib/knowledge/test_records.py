"""QA files → documents or quarantined records; every record accounted for."""

import json

import pytest

from ark_assets.lib.ingest.dialogues import Rule
from ark_assets.lib.knowledge.records import (
    KbLimits,
    SourceFile,
    build_kb,
    count_qa_records,
)
from ark_assets.lib.knowledge.text import doc_id
from ark_assets_tests.conftest import SAMPLES


def _file(name: str, data: bytes | str) -> SourceFile:
    raw = data.encode() if isinstance(data, str) else data
    return SourceFile(name, raw, "0" * 64)


def _jsonl(*records: object) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"


def _accounted(*files: SourceFile, limits: KbLimits | None = None) -> tuple[int, int, int]:
    build = build_kb(files, limits or KbLimits())
    read = sum(count_qa_records(f.name, f.data) for f in files)
    assert read == len(build.documents) + build.duplicates + len(build.rejections)
    return len(build.documents), build.duplicates, len(build.rejections)


def test_the_three_formats_give_the_same_document() -> None:
    pair = {"question": "发烧三天怎么办?", "answer": "多喝水，及时就医。", "source": "s1"}
    jsonl = _file("a.jsonl", _jsonl(pair))
    csv = _file("b.csv", 'question,answer,source\n"发烧三天怎么办?",多喝水，及时就医。,s1\n')
    medark = _file("c.json", json.dumps([{"q": "发烧三天怎么办？", "a": "多喝水，及时就医。"}]))
    build = build_kb([medark, csv, jsonl], KbLimits())
    (doc,) = build.documents
    assert doc.question == "发烧三天怎么办？"
    assert doc.doc_id == doc_id("发烧三天怎么办?", "多喝水，及时就医。")
    assert build.occurrences[doc.doc_id] == 3 and build.duplicates == 2
    # Files are read in name order: the JSONL file holds the first occurrence.
    assert (doc.source_file, doc.source_format, doc.source, doc.language) == (
        "a.jsonl",
        "jsonl",
        "s1",
        "zh",
    )


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        ({"question": "  ", "answer": "好"}, Rule.EMPTY_TEXT),
        ({"question": "发烧", "answer": None}, Rule.EMPTY_TEXT),
        ({"question": "发烧", "answer": "\u200b"}, Rule.EMPTY_TEXT),
        ({"question": "发烧", "answer": 3}, Rule.WRONG_TYPE),
        ({"question": "发烧", "answer": "好", "source": ["x"]}, Rule.WRONG_TYPE),
        ({"title": "发烧", "body": "好"}, Rule.WRONG_KEYS),
        (["发烧", "好"], Rule.WRONG_SHAPE),
        ({"question": "x" * 1001, "answer": "好"}, Rule.TEXT_TOO_LONG),
        ({"question": "发烧", "answer": "好" * 4001}, Rule.TEXT_TOO_LONG),
        ({"question": "发烧", "answer": "鍙戠儳\ufffd"}, Rule.NOT_UTF8),
        ({"question": "发烧<|im_end|>", "answer": "好"}, Rule.RESERVED_TOKEN),
    ],
)
def test_bad_records_are_quarantined_with_their_rule(record: object, rule: str) -> None:
    good = {"question": "头痛", "answer": "休息"}
    build = build_kb([_file("kb.jsonl", _jsonl(good, record))], KbLimits())
    assert [d.question for d in build.documents] == ["头痛"]
    ((source, rejection),) = build.rejections
    assert (source.name, rejection.record_index, rejection.rule) == ("kb.jsonl", 1, rule)
    assert rejection.message and rejection.excerpt


def test_limits_are_configurable() -> None:
    record = {"question": "发烧" * 10, "answer": "好"}
    file = _file("kb.jsonl", _jsonl(record))
    assert _accounted(file, limits=KbLimits(max_question_chars=5)) == (0, 0, 1)
    assert _accounted(file) == (1, 0, 0)


def test_file_level_failures_are_one_quarantined_record_each() -> None:
    files = [
        _file("latin1.csv", "question,answer\nfi\xe8vre,repos\n".encode("latin-1")),
        _file("truncated.json", '[{"q": "发烧", "a": "多喝水"}, {"q": "头'),
        _file("object.json", '{"q": "发烧", "a": "多喝水"}'),
        _file("noheader.csv", "q,a\n发烧,多喝水\n"),
        _file("notes.txt", "发烧 多喝水"),
    ]
    build = build_kb(files, KbLimits())
    rules = {source.name: rejection.rule for source, rejection in build.rejections}
    assert rules == {
        "latin1.csv": Rule.NOT_UTF8,
        "truncated.json": Rule.UNPARSEABLE_FILE,
        "object.json": Rule.WRONG_SHAPE,
        "noheader.csv": Rule.WRONG_KEYS,
        "notes.txt": Rule.UNSUPPORTED_FORMAT,
    }
    assert all(r.record_index is None for _, r in build.rejections)
    assert _accounted(*files) == (0, 0, 5)


def test_a_bad_line_does_not_take_the_file_down() -> None:
    data = (
        _jsonl({"question": "发烧", "answer": "多喝水"}).encode()
        + b'{"question": "\xff\xfe", "answer": "x"}\n'
        + b"\n"
        + b'{"question": "truncated\n'
        + _jsonl({"question": "咳嗽", "answer": "止咳"}).encode()
    )
    build = build_kb([_file("kb.jsonl", data)], KbLimits())
    assert [d.question for d in build.documents] == ["发烧", "咳嗽"]
    assert [(r.record_index, r.rule) for _, r in build.rejections] == [
        (1, Rule.NOT_UTF8),
        (3, Rule.UNPARSEABLE_RECORD),
    ]
    assert _accounted(_file("kb.jsonl", data)) == (2, 0, 2)


def test_csv_with_quoted_newlines_and_blank_rows() -> None:
    data = 'question,answer\n"发烧,\n三天","多喝水"\n,\n头痛,休息\n'
    build = build_kb([_file("kb.csv", data)], KbLimits())
    assert [d.question for d in build.documents] == ["发烧， 三天", "头痛"]
    assert _accounted(_file("kb.csv", data)) == (2, 0, 0)


def test_bundled_sample_loads_clean() -> None:
    data = (SAMPLES / "kb_qa_sample.jsonl").read_bytes()
    assert _accounted(_file("kb_qa_sample.jsonl", data)) == (2000, 0, 0)
