"""MedArk's evaluation formats read into items and predictions; bad content quarantined.

Every fixture is written here in MedArk's shapes (its repository has no licence, none of its
files is copied). ``records.pkl`` fixtures are pickled from classes registered under MedArk's
module names (``__main__.AskAction`` ...), as its inference script writes them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from ark_assets.lib.evaluation.importers import (
    ITEMS,
    MAX_REPLY_CHARS,
    MEDRAG,
    RECORDS,
    RESULTS,
    UNKNOWN,
    EvalRule,
    ImportResult,
    eval_set_name,
    read_eval_file,
)
from ark_assets.lib.evaluation.items import ASK, TELL, item_id
from ark_assets.lib.evaluation.unpickle import CLASS_KEY, UnsafePickle, load_plain
from ark_assets.lib.hashing import medark_key
from ark_assets.lib.ingest.dialogues import Rule
from ark_assets.lib.synthesis.models import ENTITY_FIELDS, Turn
from ark_assets_tests.conftest import BAD_INPUTS

FIRST = {"patient": "我这两天一直咳嗽，晚上更厉害", "doctor": "有没有发烧？"}
SECOND = {"patient": "没有发烧，有点痰", "doctor": "痰是什么颜色的？"}
SINGLE = {"patient": "孩子手上起了小红点", "doctor": "孩子发热吗？"}
ITEM_TWO_TURNS = {"instruction": "患者：我这两天一直咳嗽", "conversation": [FIRST, SECOND]}
ITEM_ONE_TURN = {"instruction": "患者：孩子手上起了小红点", "conversation": [SINGLE]}


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _accounted(result: ImportResult) -> None:
    assert result.records_read == result.accepted + len(result.rejections)


def _rules(result: ImportResult) -> dict[int | None, str]:
    return {r.record_index: r.rule for r in result.rejections}


# --- items -----------------------------------------------------------------------------------


def test_items_file_reference_history_and_key() -> None:
    result = read_eval_file("zh_med_ask.json", _json([ITEM_TWO_TURNS, ITEM_ONE_TURN]))

    assert (result.kind, result.system, result.predictions, result.rejections) == (
        ITEMS,
        None,
        [],
        [],
    )
    _accounted(result)
    two, one = result.items
    assert two.test_set == "zh_med_ask"
    assert two.reference_action == ASK
    assert two.language == "zh"
    assert two.history == (Turn(**FIRST),)
    assert (two.patient_message, two.reference) == (SECOND["patient"], SECOND["doctor"])
    assert two.instruction == ITEM_TWO_TURNS["instruction"]
    assert two.item_id == item_id([Turn(**FIRST)], SECOND["patient"], SECOND["doctor"])
    # MedArk's tagging key: sha256 of the repr of the first turn as read.
    assert two.medark_key == hashlib.sha256(str(FIRST).encode()).hexdigest()
    assert (one.history, one.reference) == ((), SINGLE["doctor"])
    assert one.prefix().turn_index == 0


def test_medark_key_keeps_the_key_order_read() -> None:
    doctor_first = {"doctor": SINGLE["doctor"], "patient": SINGLE["patient"]}
    (item,) = read_eval_file("zh_med_tell.json", _json([{"conversation": [doctor_first]}])).items

    assert item.medark_key == medark_key(doctor_first)
    assert item.medark_key != medark_key(SINGLE)
    assert item.reference_action == TELL


def test_jsonl_items_match_json_items() -> None:
    lines = b"\n".join(_json(item) for item in (ITEM_TWO_TURNS, ITEM_ONE_TURN))
    from_jsonl = read_eval_file("zh_med_ask.jsonl", lines + b"\n\n")
    from_json = read_eval_file("zh_med_ask.json", _json([ITEM_TWO_TURNS, ITEM_ONE_TURN]))

    assert from_jsonl.items == from_json.items
    assert from_jsonl.records_read == 2


def test_set_name_without_ask_or_tell_leaves_the_action_to_the_detector() -> None:
    english = {"conversation": [{"patient": "I have had a cough for days", "doctor": "Any fever?"}]}
    (item,) = read_eval_file("my_dialogues.json", _json([english])).items

    assert (item.test_set, item.reference_action, item.language) == ("my_dialogues", None, "en")


@pytest.mark.parametrize(
    ("stem", "test_set"),
    [
        ("zh_med_ask", "zh_med_ask"),
        ("non_zh_med_tell_res_bensao", "non_zh_med_tell"),
        ("zh_med_ask_res_medrag__", "zh_med_ask"),
        ("lora_sft_non_zh_med_ask_records", "non_zh_med_ask"),
        ("1-5b-dpo-non-zh-med-tell-records", "non_zh_med_tell"),
        ("BianQue-2_zh_med_ask", "zh_med_ask"),
        ("heldout_ask", "heldout_ask"),
    ],
)
def test_set_named_in_the_stem(stem: str, test_set: str) -> None:
    assert eval_set_name(stem) == test_set


# --- result files ----------------------------------------------------------------------------


def test_result_file_with_str_and_list_replies() -> None:
    records = [
        {"model": "孩子有没有发热？", "src": ITEM_ONE_TURN},
        {"model": ["痰是黄色还是白色？", [{"token": "痰", "prob": 0.5}]], "src": ITEM_TWO_TURNS},
    ]
    result = read_eval_file("BianQue-2_zh_med_ask.json", _json(records))

    assert (result.kind, result.system, result.rejections) == (
        RESULTS,
        "BianQue-2",
        [],
    )
    _accounted(result)
    assert [i.test_set for i in result.items] == ["zh_med_ask", "zh_med_ask"]
    first, second = result.predictions
    assert (first.text, first.action, first.action_source) == ("孩子有没有发热？", None, "detector")
    assert second.text == "痰是黄色还是白色？"
    assert [p.item_id for p in result.predictions] == [i.item_id for i in result.items]
    assert {p.system for p in result.predictions} == {"BianQue-2"}


def test_result_file_replies_that_are_missing_or_malformed() -> None:
    records = [
        {"model": "孩子有没有发热？", "src": ITEM_ONE_TURN},
        {"model": None, "src": ITEM_ONE_TURN},
        {"model": math.nan, "src": ITEM_ONE_TURN},
        {"model": "  ", "src": ITEM_ONE_TURN},
        {"model": [], "src": ITEM_ONE_TURN},
        {"model": 42, "src": ITEM_ONE_TURN},
        {"model": [7, []], "src": ITEM_ONE_TURN},
        {"model": "长" * (MAX_REPLY_CHARS + 1), "src": ITEM_ONE_TURN},
        {"src": ITEM_ONE_TURN},
        {"model": "孩子有没有发热？", "src": {"conversation": []}},
    ]
    result = read_eval_file("x_zh_med_tell.json", json.dumps(records).encode())

    _accounted(result)
    assert result.accepted == 1
    assert _rules(result) == {
        1: EvalRule.NULL_REPLY,
        2: EvalRule.NULL_REPLY,
        3: EvalRule.EMPTY_REPLY,
        4: EvalRule.EMPTY_REPLY,
        5: Rule.WRONG_TYPE,
        6: Rule.WRONG_TYPE,
        7: Rule.TEXT_TOO_LONG,
        8: Rule.WRONG_KEYS,
        9: Rule.NO_TURNS,
    }
    # A valid item stays an item whatever its reply; a system that gave nothing gets a failure.
    assert len(result.items) == 8
    failures = [p.failure for p in result.predictions if p.failure]
    assert failures == [EvalRule.NULL_REPLY] * 2 + [EvalRule.EMPTY_REPLY] * 2
    assert all(p.text is None for p in result.predictions if p.failure)


def test_medrag_file_with_dict_and_null() -> None:
    tell_item = {"instruction": "", "conversation": [FIRST]}
    records = [
        {
            "model": {"dialogue_analysis": "…", "is_asking": True, "response": "咳嗽多久了？"},
            "src": ITEM_ONE_TURN,
        },
        {
            "model": {"dialogue_analysis": "…", "response": "多喝水。", "is_asking": False},
            "src": tell_item,
        },
        # MedArk's MedRAG files nest the whole record in src where the model failed.
        {"model": None, "src": {"model": None, "src": ITEM_TWO_TURNS}},
        {"model": {"is_asking": "yes", "response": "咳嗽多久了？"}, "src": ITEM_ONE_TURN},
        {"model": {"dialogue_analysis": "…", "is_asking": True}, "src": ITEM_ONE_TURN},
    ]
    result = read_eval_file("zh_med_ask_res_medrag__.json", _json(records))

    assert (result.kind, result.system) == (MEDRAG, "res_medrag")
    _accounted(result)
    assert _rules(result) == {2: EvalRule.NULL_REPLY, 3: Rule.WRONG_TYPE, 4: Rule.WRONG_KEYS}
    ask, tell, null = result.predictions
    assert (ask.text, ask.action, ask.action_source) == ("咳嗽多久了？", ASK, "is_asking")
    assert (tell.text, tell.action) == ("多喝水。", TELL)
    assert (null.text, null.action, null.failure) == (None, None, EvalRule.NULL_REPLY)
    # the null record's item is still read, so our systems run on it
    assert null.item_id == item_id([Turn(**FIRST)], SECOND["patient"], SECOND["doctor"])
    assert null.item_id in {i.item_id for i in result.items}


def test_mixed_reply_forms_are_each_read_by_their_own_form() -> None:
    result = read_eval_file(
        "11_bom_crlf_nan_mixed_model.json",
        (BAD_INPUTS / "11_bom_crlf_nan_mixed_model.json").read_bytes(),
    )

    _accounted(result)
    assert result.kind == MEDRAG
    assert [(p.action_source, p.failure) for p in result.predictions] == [
        ("detector", None),
        ("detector", None),
        ("is_asking", None),
        ("is_asking", EvalRule.NULL_REPLY),
    ]


# --- malformed files and records -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "rule"),
    [
        ("zh_med_ask.json", b'[{"instruction": "x", "conversation": [', Rule.UNPARSEABLE_FILE),
        ("zh_med_ask.json", b'{"instruction": "x"}', Rule.WRONG_SHAPE),
        ("zh_med_ask.json", "[]".encode("utf-16"), Rule.NOT_UTF8),
        ("zh_med_ask.csv", b"patient,doctor\n", Rule.UNSUPPORTED_FORMAT),
    ],
)
def test_unreadable_file_is_one_rejection(name: str, data: bytes, rule: str) -> None:
    result = read_eval_file(name, data)

    assert (result.kind, result.records_read, result.items) == (UNKNOWN, 1, [])
    assert [(r.record_index, r.rule) for r in result.rejections] == [(None, rule)]
    assert result.rejections[0].message


def test_malformed_items_are_quarantined_by_rule() -> None:
    good = ITEM_ONE_TURN
    records: list[Any] = [
        good,
        42,
        {"instruction": "x"},
        {"conversation": []},
        {"conversation": None},
        {"conversation": [FIRST, {"patient": "还是咳", "doctor": " "}]},
        {"conversation": [{"patient": math.nan, "doctor": "有没有发烧？"}]},
        {"conversation": [{"patient": "咳嗽", "doctor": 5}]},
        {"instruction": 3, "conversation": [SINGLE]},
        {"conversation": [{"patient": "咳嗽"}]},
        {"conversation": [SINGLE] * 65},
        {"conversation": [{"patient": "咳" * 4001, "doctor": "有没有发烧？"}]},
        {"conversation": [{"patient": "<|im_start|>system", "doctor": "有没有发烧？"}]},
    ]
    result = read_eval_file("zh_med_ask.json", json.dumps(records).encode())  # NaN literal

    _accounted(result)
    assert result.accepted == 1
    assert _rules(result) == {
        1: Rule.WRONG_SHAPE,
        2: Rule.WRONG_KEYS,
        3: Rule.NO_TURNS,
        4: Rule.NO_TURNS,
        5: EvalRule.NO_REFERENCE,
        6: Rule.WRONG_TYPE,
        7: Rule.WRONG_TYPE,
        8: Rule.WRONG_TYPE,
        9: Rule.WRONG_KEYS,
        10: Rule.TOO_MANY_TURNS,
        11: Rule.TEXT_TOO_LONG,
        12: Rule.RESERVED_TOKEN,
    }
    assert all(r.message and r.excerpt for r in result.rejections)


def test_bad_jsonl_lines_are_counted() -> None:
    data = _json(ITEM_ONE_TURN) + b"\n{not json\n\xff\xfe\n" + _json(ITEM_TWO_TURNS)
    result = read_eval_file("zh_med_ask.jsonl", data)

    _accounted(result)
    assert (result.records_read, len(result.items)) == (4, 2)
    assert _rules(result) == {1: Rule.UNPARSEABLE_RECORD, 2: Rule.NOT_UTF8}


@pytest.mark.usefixtures("as_medark")
@pytest.mark.parametrize("form", ["json", "jsonl", "pickle"])
def test_format_is_sniffed_when_the_name_has_no_known_suffix(form: str) -> None:
    data = {
        "json": _json([ITEM_ONE_TURN]),
        "jsonl": _json(ITEM_ONE_TURN) + b"\n",
        "pickle": pickle.dumps(_records()[:1]),
    }[form]

    result = read_eval_file("zh_med_ask.upload", data)

    assert (result.kind, len(result.items), result.rejections) == (
        RECORDS if form == "pickle" else ITEMS,
        1,
        [],
    )


def test_mojibake_item_without_letters_is_kept() -> None:
    garbled = {"conversation": [{"patient": "¤。", "doctor": "°·。"}]}
    (item,) = read_eval_file("zh_med_ask.json", _json([garbled])).items

    assert item.language == "en"


# --- records.pkl -----------------------------------------------------------------------------


class RetrievalAction(BaseModel):
    reasoning: str
    queries: list[str]


class AskAction(BaseModel):
    reasoning: str
    disease: list[str] = Field(default_factory=list)
    symptom: list[str] = Field(default_factory=list)
    medcine: list[str] = Field(default_factory=list)
    surgery: list[str] = Field(default_factory=list)
    body_part: list[str] = Field(default_factory=list)
    medical_check: list[str] = Field(default_factory=list)
    concept: list[str] = Field(default_factory=list)
    text: str


class TellAction(BaseModel):
    reasoning: str
    text: str


class Response(BaseModel):
    reasoning: str
    is_asking: bool
    entities: list[str]
    text: str


class AIMessage(BaseModel):
    content: str
    type: str = "ai"


_MEDARK_MODELS = (RetrievalAction, AskAction, TellAction, Response)


@pytest.fixture
def as_medark(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make pickle write the stand-in models under MedArk's names (``__main__.AskAction``,
    ``langchain_core.messages.ai.AIMessage``), as its inference script did."""
    main = sys.modules["__main__"]
    for model in _MEDARK_MODELS:
        monkeypatch.setattr(model, "__module__", "__main__")
        monkeypatch.setattr(main, model.__name__, model, raising=False)
    for name in ("langchain_core", "langchain_core.messages", "langchain_core.messages.ai"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(AIMessage, "__module__", "langchain_core.messages.ai")
    monkeypatch.setattr(
        sys.modules["langchain_core.messages.ai"], "AIMessage", AIMessage, raising=False
    )
    yield


def _medark_item(conversation: list[dict[str, str]], is_asking: bool) -> dict[str, Any]:
    parsed = Response(reasoning="r", is_asking=is_asking, entities=["咳嗽"], text="t")
    return {
        "conversation": conversation,
        "response_structured_with_raw": {
            "raw": AIMessage(content="{}"),
            "parsed": parsed,
            "parsing_error": None,
        },
        "all_meta": {"break_because": "deducible"},
    }


def _records() -> list[list[Any]]:
    retrieval = RetrievalAction(reasoning="查一下", queries=["咳嗽有痰怎么办？"])
    ask = AskAction(reasoning="需要问痰色", symptom=["痰"], concept=["颜色"], text="痰是什么颜色？")
    tell = TellAction(reasoning="信息够了", text="多喝水，注意休息。")
    return [
        [_medark_item([FIRST, SECOND], True), [retrieval], ask, [[0.9, 0.8], [0.7]]],
        [_medark_item([SINGLE], False), [retrieval, retrieval], tell, [[0.5]]],
        [_medark_item([FIRST], True), [retrieval], None, []],
        [_medark_item([FIRST], True), [], retrieval, []],
        [_medark_item([FIRST], True), [retrieval], ask],
    ]


@pytest.mark.usefixtures("as_medark")
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_records_pickle_actions_texts_and_entities(protocol: int) -> None:
    data = pickle.dumps(_records(), protocol=protocol)
    assert b"__main__" in data  # the fixture really names MedArk's classes

    result = read_eval_file("lora_sft_zh_med_ask_records.pkl", data)

    assert (result.kind, result.system) == (RECORDS, "lora_sft_records")
    _accounted(result)
    assert _rules(result) == {
        2: EvalRule.NO_FINAL_ACTION,
        3: Rule.WRONG_TYPE,
        4: Rule.WRONG_SHAPE,
    }
    assert [i.test_set for i in result.items] == ["zh_med_ask"] * 4
    ask, tell, no_action = result.predictions
    assert (ask.action, ask.text, ask.action_source) == (ASK, "痰是什么颜色？", "tool")
    assert ask.entities == {
        **{name: [] for name in ENTITY_FIELDS},
        "symptom": ["痰"],
        "concept": ["颜色"],
    }
    assert ask.extra == {"retrievals": 1, "probabilities": 2}
    assert (tell.action, tell.text, tell.entities) == (TELL, "多喝水，注意休息。", None)
    assert tell.extra == {"retrievals": 2, "probabilities": 1}
    assert (no_action.failure, no_action.text) == (EvalRule.NO_FINAL_ACTION, None)
    # the item's conversation ends with the reference turn, as in MedArk's items
    first = result.items[0]
    assert (first.reference, first.history) == (SECOND["doctor"], (Turn(**FIRST),))
    assert first.medark_key == medark_key(FIRST)


@pytest.mark.usefixtures("as_medark")
def test_records_pickle_content_as_plain_data() -> None:
    plain = load_plain(pickle.dumps(_records()[:1]))

    item, (retrieval,), ask, _ = plain[0]
    assert retrieval == {
        CLASS_KEY: "RetrievalAction",
        "reasoning": "查一下",
        "queries": ["咳嗽有痰怎么办？"],
    }
    assert ask[CLASS_KEY] == "AskAction"
    assert item["response_structured_with_raw"]["raw"] == {
        CLASS_KEY: "AIMessage",
        "content": "{}",
        "type": "ai",
    }
    assert item["response_structured_with_raw"]["parsed"]["is_asking"] is True


@pytest.mark.usefixtures("as_medark")
def test_pickled_items_are_an_item_file() -> None:
    data = pickle.dumps([_medark_item([FIRST, SECOND], True)])

    result = read_eval_file("input.pkl", data)

    assert (result.kind, result.system, len(result.items), result.predictions) == (
        ITEMS,
        None,
        1,
        [],
    )


class _Shell:
    """Pickles as a call of ``os.system``: what ``pickle.load`` would run."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class _Exec:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.path)!r}, 'w').close()",))


# copyreg._reconstructor(set, set, ["a"]): allowed names aimed at a class that is not a stand-in.
_SNEAKY_RECONSTRUCTOR = (
    b"ccopyreg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nset\n(S'a'\nltR."
)


def _malicious(payload: str, pwned: Path) -> bytes:
    if payload == "reconstructor":
        return _SNEAKY_RECONSTRUCTOR
    evil = {
        "shell": _Shell(f"touch {pwned}"),
        "exec": _Exec(pwned),
        "nested": [[{"conversation": [SINGLE]}, [], _Shell(f"touch {pwned}"), []]],
    }[payload]
    return pickle.dumps(evil, protocol=2)


@pytest.mark.parametrize("payload", ["shell", "exec", "nested", "reconstructor"])
def test_malicious_pickle_is_quarantined_and_never_run(payload: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    data = _malicious(payload, pwned)

    result = read_eval_file("lora_sft_zh_med_ask_records.pkl", data)

    assert not pwned.exists()
    assert (result.records_read, result.items, result.predictions) == (1, [], [])
    (rejection,) = result.rejections
    assert (rejection.record_index, rejection.rule) == (None, EvalRule.UNSAFE_PICKLE)
    if payload in ("shell", "nested"):
        assert "'system'" in rejection.message and os.name in rejection.message


@pytest.mark.parametrize("payload", ["shell", "exec"])
def test_malicious_fixture_runs_under_plain_pickle(payload: str, tmp_path: Path) -> None:
    """The control for the test above: ``pickle.loads`` of the same bytes does run them."""
    pwned = tmp_path / "pwned"

    pickle.loads(_malicious(payload, pwned))

    assert pwned.exists()


def test_unpickler_names_the_refused_global() -> None:
    with pytest.raises(UnsafePickle, match="'system' from module 'posix'"):
        load_plain(b"cposix\nsystem\n(S'true'\ntR.")


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (pickle.dumps([[1, 2]])[:-3], EvalRule.BAD_PICKLE),
        (b"not a pickle at all", EvalRule.BAD_PICKLE),
        (pickle.dumps({"records": []}), Rule.WRONG_SHAPE),
    ],
)
def test_unreadable_pickle_is_one_rejection(data: bytes, rule: str) -> None:
    result = read_eval_file("records.pkl", data)

    assert (result.records_read, result.kind) == (1, UNKNOWN)
    assert [(r.record_index, r.rule) for r in result.rejections] == [(None, rule)]


def test_shared_tuples_are_converted_once() -> None:
    value: Any = ("leaf",)
    for _ in range(64):  # 2^64 paths through the graph, 64 distinct tuples
        value = (value, value)

    plain = load_plain(pickle.dumps(value))

    assert plain[0] is plain[1]


@pytest.mark.parametrize(
    ("stem", "system"),
    [
        ("BianQue-2_zh_med_ask", "BianQue-2"),
        ("lora_sft_non_zh_med_tell_records", "lora_sft_records"),
        ("zh_med_ask", "zh_med_ask"),
        ("my_results", "my_results"),
    ],
)
def test_a_result_file_names_its_system_without_the_test_set(stem: str, system: str) -> None:
    from ark_assets.lib.evaluation.importers import eval_set_name, system_name

    assert system_name(stem, eval_set_name(stem)) == system
