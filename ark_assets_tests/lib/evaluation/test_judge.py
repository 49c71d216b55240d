"""LLM judges through the teacher, with a scripted backend."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from ark_assets.lib.evaluation import judge
from ark_assets.lib.evaluation.items import ASK, EvalItem
from ark_assets.lib.knowledge.retrieval import Hit
from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.models import Turn
from ark_assets.lib.synthesis.teacher import Teacher, TeacherRequest, TransientError
from ark_assets_tests.lib.synthesis.conftest import ScriptedBackend

ITEM = EvalItem(
    item_id="i1",
    test_set="zh_med_tell",
    language="zh",
    history=(Turn(patient="我发烧了。", doctor="几天了？"),),
    patient_message="三天了，38.5度。",
    reference="可以先吃布洛芬退烧，多喝水。",
    reference_action=ASK,
    medark_key="k",
)
REPLY = "建议服用布洛芬，注意休息。"


def _judge(*answers: str | Exception) -> tuple[judge.Judge, ScriptedBackend]:
    """A judge whose backend gives ``answers`` in turn (the last one from then on)."""

    def answer(request: TeacherRequest[Any], number: int) -> str:
        reply = answers[min(number, len(answers)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    backend = ScriptedBackend(answer)
    return judge.Judge(Teacher(backend, sleep=lambda _: None)), backend


def test_the_rules_teacher_cannot_judge() -> None:
    with pytest.raises(judge.JudgeUnavailable, match="configure an LLM teacher"):
        judge.Judge(Teacher(RulesBackend()))


def test_is_question_sees_the_reply_and_the_schema() -> None:
    judged, backend = _judge(json.dumps({"reasoning": "问了天数", "is_question": True}))
    result = judged.is_question("发烧几天了？", "zh")
    assert result.verdict is not None and result.verdict.is_question
    assert result.failure is None and not result.from_cache
    assert result.prompt.startswith("judge/zh.v1#")
    (request,) = backend.requests
    assert request.stage == judge.QUESTION and request.output is judge.QuestionVerdict
    system, user = request.messages
    assert '"is_question"' in system["content"] and "发烧几天了？" in user["content"]


def test_hallucination_judge_gets_the_real_reply_and_the_references() -> None:
    judged, backend = _judge(json.dumps({"reasoning": "剂量无误", "hallucinates": False}))
    references = [Hit("d1", "发烧吃什么药", "布洛芬可以退烧。", None, 3.0)]
    result = judged.hallucinates(ITEM, REPLY, references)
    assert result.verdict is not None and not result.verdict.hallucinates
    user = backend.requests[0].messages[1]["content"]
    for text in ("患者：我发烧了。", "医生：几天了？", "患者：三天了", REPLY, ITEM.reference):
        assert text in user
    assert "发烧吃什么药" in user and "布洛芬可以退烧。" in user


def test_hallucination_judge_without_references_says_so() -> None:
    judged, backend = _judge(json.dumps({"reasoning": "无", "hallucinates": True}))
    judged.hallucinates(ITEM, REPLY, [])
    assert "（没有检索到资料）" in backend.requests[0].messages[1]["content"]


def test_rubric_in_english() -> None:
    scores = {"proactivity": 2, "accuracy": 5, "helpfulness": 4, "linguistic_quality": 5}
    judged, backend = _judge(json.dumps({"reasoning": "ok", **scores}))
    english = dataclasses.replace(ITEM, language="en")
    result = judged.rubric(english, "Take ibuprofen and rest.")
    assert result.verdict is not None
    assert result.verdict.model_dump(exclude={"reasoning"}) == scores
    assert result.prompt.startswith("judge/en.v1#")
    assert "proactivity" in backend.requests[0].messages[0]["content"]


def test_an_invalid_answer_is_repaired_within_the_retry_policy() -> None:
    bad = json.dumps({"reasoning": "x", "is_informational": "maybe?"})
    good = json.dumps({"reasoning": "给了建议", "is_informational": True})
    judged, backend = _judge(bad, good)
    result = judged.is_informational(ITEM, REPLY)
    assert result.verdict is not None and result.verdict.is_informational
    assert len(backend.requests) == 2
    assert judged.failures == dict.fromkeys(judge.JUDGE_STAGES, 0)


def test_failures_are_bounded_counted_and_returned_as_none() -> None:
    out_of_range = {"proactivity": 6, "accuracy": 5, "helpfulness": 4, "linguistic_quality": 5}
    judged, backend = _judge(json.dumps({"reasoning": "x", **out_of_range}))
    result = judged.rubric(ITEM, REPLY)
    attempts = judged.teacher.retry.max_attempts
    assert result.verdict is None
    assert result.failure is not None
    assert result.failure.startswith(f"InvalidOutput after {attempts} attempts")
    assert len(backend.requests) == attempts  # never retried forever
    assert judged.failures[judge.RUBRIC] == 1


def test_a_server_that_keeps_failing_gives_a_failed_judgement() -> None:
    judged, backend = _judge(TransientError("503 service unavailable"))
    result = judged.is_question(REPLY, "zh")
    assert result.verdict is None and result.failure is not None
    assert "TransientError" in result.failure and "503" in result.failure
    assert len(backend.requests) == judged.teacher.retry.max_attempts
    assert judged.failures[judge.QUESTION] == 1
