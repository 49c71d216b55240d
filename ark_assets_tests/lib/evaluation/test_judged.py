"""Judged metrics and BERTScore in the scores: the judge decides free text, failures give no
score, BERTScore's labels come through as bert-score returns them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ark_assets.lib.evaluation import judge, judged, scoring
from ark_assets.lib.evaluation.items import ASK, TELL, EvalItem, Prediction
from ark_assets.lib.evaluation.metrics import BertScores
from ark_assets.lib.knowledge.lexical import Bm25Index
from ark_assets.lib.knowledge.retrieval import Hit
from ark_assets.lib.synthesis.models import Entities, Turn
from ark_assets.lib.synthesis.teacher import RetryPolicy, Teacher, TeacherRequest
from ark_assets.testing.tiny import save_random_bert
from ark_assets_tests.lib.synthesis.conftest import ScriptedBackend


def _item(item_id: str, reference: str, action: str) -> EvalItem:
    return EvalItem(
        item_id=item_id,
        test_set=f"zh_med_{action}",
        language="zh",
        history=(Turn(patient="我发烧了。", doctor="几天了？"),),
        patient_message="三天了，38.5度。",
        reference=reference,
        reference_action=ASK if action == "ask" else TELL,
        medark_key=item_id,
    )


ASK_ITEM = _item("a1", "有没有咳嗽？", "ask")
TELL_ITEM = _item("t1", "可以先吃布洛芬退烧，多喝水。", "tell")
KB = Bm25Index([Hit("d1", "发烧怎么办", "布洛芬可以退烧。", "kb", 0.0)])


def _answer(request: TeacherRequest[Any], _: int) -> str:
    """The judge's verdicts as a function of the reply: "？"-free "请说说" is a question (the
    offline detector cannot tell) and so is a "吗" question, "抗生素" hallucinates, "坏" breaks
    every attempt; an asked entity is mentioned when its first character is in the later turns
    (and the judge also names "发烧", which nobody asked)."""
    if request.output is judge.MentionVerdict:  # "坏" in the later turns breaks it
        later, asked = request.context["later"], request.context["entities"]
        if "坏" in later:
            return "not json"
        named = [line[2:] for line in asked.splitlines() if line[2] in later] + ["发烧"]
        return json.dumps({"reasoning": "r", "mentioned": named})
    reply = request.context["reply"]
    if "坏" in reply:
        return "not json"
    if request.output is Entities:  # the entity stage: the reply's first two characters
        return json.dumps({"symptom": [reply[:2]]})
    if request.output is judge.QuestionVerdict:
        asks = reply.startswith("请说说") or "吗" in reply
        return json.dumps({"reasoning": "r", "is_question": asks})
    if request.output is judge.InformationalVerdict:
        return json.dumps({"reasoning": "r", "is_informational": "布洛芬" in reply})
    if request.output is judge.HallucinationVerdict:
        return json.dumps({"reasoning": "r", "hallucinates": "抗生素" in reply})
    scores = {"proactivity": 2, "accuracy": 4, "helpfulness": 3, "linguistic_quality": 5}
    return json.dumps({"reasoning": "r", **scores})


def _judge() -> tuple[judge.Judge, ScriptedBackend]:
    backend = ScriptedBackend(_answer)
    teacher = Teacher(backend, retry=RetryPolicy(max_attempts=2), sleep=lambda _: None)
    return judge.Judge(teacher), backend


def _prediction(item: EvalItem, text: str, system: str = "bot") -> Prediction:
    return Prediction(system, item.item_id, text, None, "text")


def _values(scored: scoring.Scored, metric: str) -> dict[tuple[str, str], float | None]:
    rows = scored.scores.filter(metric=metric)
    return {(r["system"], r["item_id"]): r["value"] for r in rows.iter_rows(named=True)}


def _score(pairs: list[tuple[EvalItem, Prediction]], **kwargs: Any) -> scoring.Scored:
    return scoring.score_all(
        [item for item, _ in pairs],
        [(item.test_set, p) for item, p in pairs],
        dialogue_of=lambda _: None,
        kb=KB,
        embed=lambda texts: [[1.0, float(len(t))] for t in texts],
        **kwargs,
    )


def test_the_judge_decides_free_text_the_detector_cannot() -> None:
    # "请说说症状。" asks without a question mark: the offline detector calls it a tell
    pairs = [(ASK_ITEM, _prediction(ASK_ITEM, "请说说您的症状。"))]
    offline = _values(_score(pairs), "accuracy")
    judged_ = _values(_score(pairs, judge=_judge()[0]), "accuracy")
    assert offline[("bot", "a1")] == 0.0
    assert judged_[("bot", "a1")] == 1.0
    # with a judge, the asked entities come from the teacher's entity stage, not the rules
    judge_, backend = _judge()
    scored = _score(pairs, judge=judge_)
    assert {r.context["reply"] for r in backend.requests if r.output is Entities} == {
        "请说说您的症状。",
        ASK_ITEM.reference,
    }
    assert scored.entity_extraction == {"teacher": 2, "rules_fallback": 0}
    assert _values(scored, "levenshtein")[("bot", "a1")] == 0.0  # "请说" vs "有没": nothing shared
    # an import that stored the detector's guess is free text too: the judge decides it
    guessed = Prediction("file", "a1", "请说说您的症状。", TELL, "detector")
    assert _values(_score([(ASK_ITEM, guessed)], judge=_judge()[0]), "accuracy") == {
        ("file", "a1"): 1.0
    }
    # a system's own action is never overridden by the judge
    own = Prediction("agent", "a1", "请说说您的症状。", TELL, "tool")
    assert _values(_score([(ASK_ITEM, own)], judge=_judge()[0]), "accuracy")[("agent", "a1")] == 0


def test_tell_replies_get_informational_support_and_the_rubric() -> None:
    good = _prediction(TELL_ITEM, "建议服用布洛芬，多喝水。", "good")
    wrong = _prediction(TELL_ITEM, "建议服用抗生素。", "wrong")
    asked = _prediction(ASK_ITEM, "请说说您的症状。", "good")
    judge_, backend = _judge()
    scored = _score([(TELL_ITEM, good), (TELL_ITEM, wrong), (ASK_ITEM, asked)], judge=judge_)
    assert _values(scored, "judge_informational") == {("good", "t1"): 1.0, ("wrong", "t1"): 0.0}
    assert _values(scored, "judge_support") == {("good", "t1"): 1.0, ("wrong", "t1"): 0.0}
    rubric = _values(scored, "rubric_linguistic_quality")
    assert set(rubric) == {("good", "t1"), ("wrong", "t1"), ("good", "a1")}  # every reply
    assert set(rubric.values()) == {5.0}
    assert _values(scored, "rubric_proactivity")[("good", "a1")] == 2.0
    # the hallucination judge saw the BM25 references of the reply
    (hallucination,) = [
        r for r in backend.requests
        if r.output is judge.HallucinationVerdict and "布洛芬" in r.context["reply"]
    ]  # fmt: skip
    assert "布洛芬可以退烧" in hallucination.context["documents"]
    summary = scoring.summarise(scored)
    assert set(summary["metric"]) >= {"judge_informational", "judge_support", "rubric_accuracy"}


def test_a_failed_judgement_gives_no_score_and_is_counted() -> None:
    broken = _prediction(TELL_ITEM, "坏的回复")
    judge_, _ = _judge()
    scored = _score([(TELL_ITEM, broken)], judge=judge_)
    assert _values(scored, "judge_informational") == {}
    assert _values(scored, "rubric_accuracy") == {}
    # the question judge failed too: the offline detector decided the action
    assert _values(scored, "accuracy") == {("bot", "t1"): 1.0}
    assert judge_.failures == {
        judge.QUESTION: 1,
        judge.INFORMATIONAL: 1,
        judge.HALLUCINATION: 1,
        judge.RUBRIC: 1,
        judge.MENTION: 0,
    }


def test_the_judge_decides_auv_where_the_lexical_match_cannot() -> None:
    # the patient answers "不咳" (no cough): lexically "咳嗽" is not there, the judge finds it
    denied = (Turn(patient="不咳，就是头痛。", doctor="好的。"),)
    broken = (Turn(patient="坏了，头痛。", doctor="好的。"),)
    later_ask = _item("a2", "有没有咳嗽？", "ask")
    turns = {"a1": denied, "a2": broken}

    def dialogue_of(item: EvalItem) -> list[Turn]:
        own = Turn(patient=item.patient_message, doctor=item.reference)
        return [*item.history, own, *turns[item.item_id]]

    pairs = [(ASK_ITEM, _prediction(ASK_ITEM, "咳嗽吗？")),
             (later_ask, _prediction(later_ask, "咳嗽吗？"))]  # fmt: skip
    scored = scoring.score_all(
        [item for item, _ in pairs], [(item.test_set, p) for item, p in pairs],
        dialogue_of=dialogue_of, kb=KB, embed=lambda texts: [[1.0] for _ in texts],
        judge=(judge_ := _judge()[0]),
    )  # fmt: skip
    assert _values(scored, "auv") == {("bot", "a1"): 0.0, ("bot", "a2"): 0.0}
    # "发烧" was never asked: the share stays 1/1, not 2/1; the broken judgement gives no row
    assert _values(scored, "judge_auv") == {("bot", "a1"): 1.0}
    assert judge_.failures[judge.MENTION] == 1
    (request,) = [r for r in _judge_requests(judge_) if r.output is judge.MentionVerdict][:1]
    assert request.context == {"entities": "- 咳嗽", "later": "1. 不咳，就是头痛。"}


def _judge_requests(judge_: judge.Judge) -> list[TeacherRequest[Any]]:
    backend = judge_.teacher.backend
    assert isinstance(backend, ScriptedBackend)
    return sorted(backend.requests, key=lambda r: "坏" in r.context.get("later", ""))


def test_bertscore_rows_with_a_real_model(tmp_path: Path) -> None:
    model = save_random_bert(tmp_path / "bert", TELL_ITEM.reference + "建议手术")
    calls: list[int] = []

    def scorer(replies: list[str], references: list[str]) -> BertScores:
        from ark_assets.lib.evaluation.metrics import bertscore

        calls.append(len(replies))
        return bertscore(replies, references, model, "zh", num_layers=2)

    same = _prediction(TELL_ITEM, TELL_ITEM.reference, "copy")
    other = _prediction(TELL_ITEM, "建议手术。", "other")
    silent = Prediction("silent", "t1", None, None, "text", failure="null")
    scored = _score([(TELL_ITEM, same), (TELL_ITEM, other), (TELL_ITEM, silent)],
                    bertscore=scorer)  # fmt: skip
    f1 = _values(scored, "bertscore_f1")
    assert f1[("copy", "t1")] == pytest.approx(1.0, abs=1e-4)
    assert f1[("other", "t1")] < 0.99
    assert ("silent", "t1") not in f1  # no reply, no score (not a zero)
    assert calls == [1, 1]  # one batched call per (test set, system) with replies
    precision = _values(scored, "bertscore_precision")[("other", "t1")]
    recall = _values(scored, "bertscore_recall")[("other", "t1")]
    assert precision != pytest.approx(recall)  # different lengths: P and R differ


def test_every_judged_metric_is_defined_for_the_report() -> None:
    assert set(judged.JUDGED_METRICS) <= set(scoring.METRICS)
    assert all(scoring.METRICS[name] for name in judged.JUDGED_METRICS)
