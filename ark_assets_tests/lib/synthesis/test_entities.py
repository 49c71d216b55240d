"""MedArk stage 2: entities of asking replies, grounded in the reply text."""

import json
from typing import Any

from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.entities import regenerate, split_found
from ark_assets.lib.synthesis.models import Entities
from ark_assets.lib.synthesis.teacher import RetryPolicy, Teacher
from ark_assets_tests.lib.synthesis.conftest import ScriptedBackend


def _row(reply: str, asking: bool = True, turn: int = 0) -> dict[str, Any]:
    return {
        "batch": "b",
        "conversation_id": "c",
        "medark_key": "k",
        "turn_index": turn,
        "language": "zh",
        "doctor_reply": reply,
        "is_asking": asking,
    }


def test_rules_entities_of_asking_replies_only() -> None:
    rows = [
        _row("头痛多久了？有没有发烧？吃过布洛芬吗？", turn=0),
        _row("多喝水，注意休息。", asking=False, turn=1),
        _row("频繁吗？", turn=2),
    ]
    outcome = regenerate(Teacher(RulesBackend()), rows)
    assert not outcome.failures
    first, second = outcome.records
    assert first.entities.symptom == ["头痛", "发烧"] and first.entities.medcine == ["布洛芬"]
    assert first.entities.concept == ["多久"]
    assert second.turn_index == 2 and second.entities.concept == ["频繁"]  # keyword fallback
    assert first.prompt_version.startswith("ark/zh/entities.v1#")


def test_entities_absent_from_the_reply_are_dropped() -> None:
    entities = Entities(symptom=["头痛", "恶心"], medcine=["阿司匹林"])
    kept, dropped = split_found(entities, "头痛几天了？")
    assert kept.symptom == ["头痛"] and kept.medcine == [] and dropped == ["恶心", "阿司匹林"]


def test_invented_entities_only_are_re_asked_then_recorded_as_a_failure() -> None:
    invented = json.dumps({"disease": ["糖尿病"], "concept": None})
    backend = ScriptedBackend(lambda request, n: invented)
    teacher = Teacher(backend, retry=RetryPolicy(max_attempts=2), sleep=lambda s: None)
    outcome = regenerate(teacher, [_row("头痛多久了？")])
    (failure,) = outcome.failures
    assert not outcome.records and failure.stage == "entities" and failure.attempts == 2
    assert "no listed entity occurs" in failure.error
    assert len(backend.requests) == 2


def test_an_ask_about_nothing_the_lists_name_is_a_record_with_none_not_a_failure() -> None:
    """ "多久了？" ("how long?") is a legitimate ask with no entity: MedArk's lists are optional."""
    backend = ScriptedBackend(lambda request, n: "{}")
    teacher = Teacher(backend, retry=RetryPolicy(max_attempts=2), sleep=lambda s: None)
    outcome = regenerate(teacher, [_row("多久了？"), _row("?", turn=1)])
    assert not outcome.failures and len(backend.requests) == 2  # accepted at once, not re-asked
    assert [r.entities.count() for r in outcome.records] == [0, 0]
    assert all(r.dropped == [] for r in outcome.records)


def test_the_rules_teacher_records_a_bare_question_mark_with_no_entity() -> None:
    outcome = regenerate(Teacher(RulesBackend()), [_row("？"), _row('"\\\x01😀？', turn=1)])
    assert not outcome.failures
    assert [r.entities.count() for r in outcome.records] == [0, 0]
