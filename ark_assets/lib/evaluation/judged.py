"""Metrics that need a model beyond the offline defaults: the LLM judge's verdicts and BERTScore.

With a judge (``judge.Judge``, an LLM teacher):

- the ask-or-tell of a **free-text** reply is the judge's "is it a question" verdict instead of
  the offline question detector (``judged_actions``); a verdict the judge could not give falls
  back to the detector and is counted;
- every reply to an item whose reference tells gets MedArk's "is it informational" verdict and
  its hallucination verdict, judged against the real doctor reply and the top ``REFERENCES_K``
  BM25 knowledge-base documents (MedArk: k = 8); ``judge_support`` is 1 when the judge finds no
  hallucination, as MedArk's support;
- every reply gets DISC-MedLLM's rubric, four scores from 1 to 5;
- ``judge_auv``: where both ask and the dialogue's later turns are known, the judge decides which
  asked entities the patient mentions in the later real turns (MedArk's AUV judge), beside the
  lexical ``auv``;
- the entities of free-text asks and of the reference questions come from the teacher's entity
  stage (the one synthesis uses, cached) instead of the offline rules (``teacher_entities``);
  a reply the teacher cannot extract from falls back to the rules and is counted.

Requests go through the teacher (cache, pacing, bounded retries) from a thread pool as wide as
the teacher's concurrency. A request that fails every attempt gives no score for that item
(never a guessed one); ``Judge.failures`` counts them per question.

With a BERTScore model (``bertscore_rows``): precision, recall and F1 of the reply (candidate)
against the reference, labelled as bert-score returns them (MedArk's script swaps the labels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

from ark_assets.lib.evaluation import metrics
from ark_assets.lib.evaluation.items import ASK, TELL, Action, EvalItem, Prediction
from ark_assets.lib.evaluation.judge import Judge, mentioned_of
from ark_assets.lib.knowledge.retrieval import LexicalSearch

REFERENCES_K: Final = 8
RUBRIC_DIMENSIONS: Final = ("proactivity", "accuracy", "helpfulness", "linguistic_quality")

JUDGED_METRICS: dict[str, str] = {
    "judge_informational": "share of replies to telling items that the judge finds "
    "informational (MedArk's informational judge)",
    "judge_support": "share of replies to telling items the judge finds free of hallucination, "
    f"against the real doctor reply and the top {REFERENCES_K} BM25 knowledge-base documents "
    "(MedArk's support)",
    **{
        f"rubric_{name}": f"DISC-MedLLM rubric, {name.replace('_', ' ')}: the judge's score "
        "from 1 (worst) to 5 (best)"
        for name in RUBRIC_DIMENSIONS
    },
    "judge_auv": "share of the entities asked that the judge finds the patient mentions in the "
    "later real turns (MedArk's AUV judge), where both ask and later turns are known",
    "bertscore_precision": "BERTScore precision of the reply against the reference (the "
    "configured local model)",
    "bertscore_recall": "BERTScore recall of the reply against the reference",
    "bertscore_f1": "BERTScore F1 of the reply against the reference",
}

Pair = tuple[EvalItem, Prediction]
DETECTOR: Final = "detector"  # an action the offline question detector gave a free-text reply
Row = tuple[EvalItem, str, float | None]  # (item, metric, value)
BertScorer = Callable[[list[str], list[str]], metrics.BertScores]  # (replies, references)
ActionOf = Callable[[EvalItem, Prediction], Action | None]

T = TypeVar("T")
R = TypeVar("R")


def _map(judge: Judge, work: Callable[[T], R], inputs: Sequence[T]) -> list[R]:
    """``work`` over ``inputs`` in a pool as wide as the teacher's concurrency, order kept."""
    if not inputs:
        return []
    with ThreadPoolExecutor(max_workers=judge.teacher.concurrency) as pool:
        return list(pool.map(work, inputs))


def free_text(prediction: Prediction) -> bool:
    """A reply whose action is not the system's own: none, or the offline detector's guess."""
    own = prediction.action is not None and prediction.action_source != DETECTOR
    return not own and bool(prediction.text and prediction.text.strip())


def judged_actions(pairs: Sequence[Pair], judge: Judge) -> dict[tuple[str, str], Action]:
    """``(system, item_id) -> action`` for free-text replies to labelled items, by the judge's
    question verdict; replies the judge could not decide are left out (the detector decides)."""
    free = [(item, p) for item, p in pairs if item.reference_action is not None and free_text(p)]
    verdicts = _map(judge, lambda pair: judge.is_question(pair[1].text or "", pair[0].language),
                    free)  # fmt: skip
    return {
        (p.system, item.item_id): ASK if v.verdict.is_question else TELL
        for (item, p), v in zip(free, verdicts, strict=True)
        if v.verdict is not None
    }


def action_of(judged: dict[tuple[str, str], Action]) -> ActionOf:
    """The system's own action; else the judge's verdict; else the offline detector."""

    def decide(item: EvalItem, prediction: Prediction) -> Action | None:
        if free_text(prediction) and (prediction.system, item.item_id) in judged:
            return judged[(prediction.system, item.item_id)]
        return metrics.predicted_action(prediction, item.language)

    return decide


def teacher_entities(judge: Judge) -> tuple[metrics.EntitiesOf, dict[str, int]]:
    """An entity extractor through the judge's teacher, and its fallback count (rules used)."""
    from ark_assets.lib.synthesis.entities import extract
    from ark_assets.lib.synthesis.teacher import TeacherFailure

    counts = {"teacher": 0, "rules_fallback": 0}

    def entities_of(text: str, language: str) -> dict[str, list[str]]:
        try:
            kept, _ = extract(judge.teacher, text, language)
        except TeacherFailure:
            counts["rules_fallback"] += 1
            return metrics.rules_entities(text, language)
        counts["teacher"] += 1
        return kept.as_lists()

    return entities_of, counts


def judged_rows(pairs: Sequence[Pair], judge: Judge, kb: LexicalSearch) -> list[Row]:
    """Informational and support verdicts on replies to telling items; the rubric on every
    reply. A failed judgement gives no row for that metric and item."""
    replied = [(item, p.text) for item, p in pairs if p.text and p.text.strip()]

    def judge_one(pair: tuple[EvalItem, str]) -> list[Row]:
        item, reply = pair
        rows: list[Row] = []
        if item.reference_action == TELL:
            informational = judge.is_informational(item, reply).verdict
            if informational is not None:
                rows.append((item, "judge_informational", float(informational.is_informational)))
            references = kb.search(reply, REFERENCES_K)
            hallucination = judge.hallucinates(item, reply, references).verdict
            if hallucination is not None:
                rows.append((item, "judge_support", float(not hallucination.hallucinates)))
        scores = judge.rubric(item, reply).verdict
        if scores is not None:
            rows += [
                (item, f"rubric_{name}", float(getattr(scores, name))) for name in RUBRIC_DIMENSIONS
            ]
        return rows

    return [row for rows in _map(judge, judge_one, replied) for row in rows]


def mention_rows(asks: Sequence[tuple[EvalItem, list[str], list[str]]], judge: Judge) -> list[Row]:
    """``judge_auv`` of each ``(item, asked entities, later patient turns)``: the share of the
    asked entities the judge finds mentioned. Nothing asked gives no row (as the lexical AUV);
    a failed judgement gives no row."""
    wanted = [(item, asked, later) for item, asked, later in asks if asked and later]

    def judge_one(ask: tuple[EvalItem, list[str], list[str]]) -> Row | None:
        item, asked, later = ask
        verdict = judge.mentions(item, asked, later).verdict
        if verdict is None:
            return None
        return item, "judge_auv", len(mentioned_of(verdict, asked)) / len(asked)

    return [row for row in _map(judge, judge_one, wanted) if row is not None]


def bertscore_rows(pairs: Sequence[Pair], scorer: BertScorer) -> list[Row]:
    """BERTScore P/R/F1 of every reply against its item's reference (one batched call)."""
    replied = [(item, p.text) for item, p in pairs if p.text and p.text.strip()]
    if not replied:
        return []
    scores = scorer([text for _, text in replied], [item.reference for item, _ in replied])
    rows: list[Row] = []
    for (item, _), p, r, f in zip(replied, scores.precision, scores.recall, scores.f1, strict=True):
        rows += [(item, "bertscore_precision", p), (item, "bertscore_recall", r),
                 (item, "bertscore_f1", f)]  # fmt: skip
    return rows
