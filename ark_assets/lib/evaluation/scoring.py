"""Per-item scores of every (test set, system), and their means with bootstrap intervals.

``score_all`` pairs each prediction with its item and computes, offline, every metric that
applies to it (``metrics``): action correctness on every labelled item; ask quality (Levenshtein,
DSC, Jaccard) and AUV where both the reference and the prediction ask; lexical support of the
reply where the reference tells; embedding similarity to the reference wherever there is a
reply. With a judge or a BERTScore model (``judged``), their metrics join the same rows and the
judge decides the action of free-text replies. ``summarise`` turns those rows into the report's
tidy table (one row per test set, system and metric: n, mean, 95% bootstrap interval) and the
confusion matrices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ark_assets.lib.evaluation import judged, metrics
from ark_assets.lib.evaluation.items import ASK, TELL, EvalItem, Prediction
from ark_assets.lib.evaluation.judge import Judge
from ark_assets.lib.evaluation.report import Confusion
from ark_assets.lib.knowledge.retrieval import LexicalSearch
from ark_assets.lib.synthesis.models import Turn
from ark_assets.lib.tables import Column, frame

METRICS: dict[str, str] = {
    "accuracy": "share of items whose predicted action (ask or tell) is the reference's "
    "(MedArk's action accuracy: asks/N on an ask set, tells/N on a tell set)",
    "balanced_accuracy": "mean recall over the reference classes present (no interval)",
    "levenshtein": "Levenshtein similarity of the entities asked and the reference question's "
    "(rapidfuzz ratio of the joined lists), where both ask",
    "dsc": "Dice of entities asked vs the reference's, one-to-one matches at similarity ≥ 0.8",
    "jaccard": "Jaccard of the same matches, in [0, 1]",
    "auv": "share of the entities asked that the patient mentions in the later real turns "
    "(lexical match), where both ask and later turns are known (judged: judge_auv)",
    "lexical_support": "share of the reply's sentences whose best BM25 knowledge-base document "
    "holds half of their content words, where the reference tells (a lexical proxy, not a "
    "hallucination judgement)",
    "embedding_similarity": "cosine of the reply's and the reference's embeddings (the "
    "configured embedder; not BERTScore)",
    **judged.JUDGED_METRICS,
}

SCORES = (
    Column("test_set", pl.Utf8, "Test set."),
    Column("system", pl.Utf8, "Who answered."),
    Column("item_id", pl.Utf8, "The item."),
    Column("metric", pl.Utf8, "Metric name (docs/evaluation.md)."),
    Column("value", pl.Float64, "The item's score."),
)

Dialogues = Callable[[EvalItem], Sequence[Turn] | None]  # the item's whole dialogue, if known


@dataclass(frozen=True)
class Scored:
    scores: pl.DataFrame  # SCORES rows
    confusion: dict[tuple[str, str], Confusion]
    balanced: dict[tuple[str, str], float | None]
    # entities by the judge's teacher vs the rules fallback (empty: offline rules only)
    entity_extraction: dict[str, int] = field(default_factory=dict)


def score_all(
    items: Sequence[EvalItem],
    predictions: Sequence[tuple[str, Prediction]],
    *,
    dialogue_of: Dialogues,
    kb: LexicalSearch,
    embed: metrics.Embed,
    entities_of: metrics.EntitiesOf = metrics.rules_entities,
    medark_compat: bool = False,
    judge: Judge | None = None,
    bertscore: judged.BertScorer | None = None,
) -> Scored:
    """Every offline metric of every (test set, system); the judge's and BERTScore's too when
    ``judge`` / ``bertscore`` are given."""
    by_id = {item.item_id: item for item in items}
    groups: dict[tuple[str, str], list[tuple[EvalItem, Prediction]]] = {}
    for test_set, prediction in predictions:
        item = by_id.get(prediction.item_id)
        if item is not None:
            groups.setdefault((test_set, prediction.system), []).append((item, prediction))
    rows: list[dict[str, Any]] = []
    confusion, balanced = {}, {}
    every = [pair for pairs in groups.values() for pair in pairs]
    action_of = judged.action_of(judged.judged_actions(every, judge) if judge else {})
    extraction: dict[str, int] = {}
    if judge is not None and entities_of is metrics.rules_entities:
        entities_of, extraction = judged.teacher_entities(judge)
    for (test_set, system), pairs in sorted(groups.items()):
        item_rows, mentions = _item_rows(
            test_set, system, pairs, dialogue_of, kb, embed, entities_of, medark_compat,
            action_of,
        )  # fmt: skip
        rows += item_rows
        extra = judged.bertscore_rows(pairs, bertscore) if bertscore else []
        if judge is not None:
            extra += judged.judged_rows(pairs, judge, kb) + judged.mention_rows(mentions, judge)
        rows += [_row(test_set, system, item, metric, value) for item, metric, value in extra]
        selection = metrics.action_selection(pairs, action_of)[system]
        confusion[(test_set, system)] = _confusion(selection)
        balanced[(test_set, system)] = selection.balanced_accuracy
    return Scored(frame(rows, SCORES), confusion, balanced, extraction)


def _item_rows(
    test_set: str,
    system: str,
    pairs: list[tuple[EvalItem, Prediction]],
    dialogue_of: Dialogues,
    kb: LexicalSearch,
    embed: metrics.Embed,
    entities_of: metrics.EntitiesOf,
    medark_compat: bool,
    action_of: judged.ActionOf,
) -> tuple[list[dict[str, Any]], list[tuple[EvalItem, list[str], list[str]]]]:
    """The offline rows, and each ask's (item, asked entities, later patient turns) for the
    judged AUV."""
    rows = []
    mentions: list[tuple[EvalItem, list[str], list[str]]] = []

    def add(item: EvalItem, metric: str, value: float | None) -> None:
        rows.append(_row(test_set, system, item, metric, value))

    for item, prediction in pairs:
        if item.reference_action is not None:
            action = action_of(item, prediction)
            add(item, "accuracy", float(action == item.reference_action))
        if item.reference_action == TELL:
            add(item, "lexical_support", metrics.lexical_support(prediction.text, kb))
    asks = metrics.ask_quality(
        pairs, entities_of=entities_of, medark_compat=medark_compat, action_of=action_of
    )
    by_id = {item.item_id: item for item, _ in pairs}
    for score in asks:
        item = by_id[score.item_id]
        add(item, "levenshtein", score.levenshtein)
        add(item, "dsc", score.dsc)
        add(item, "jaccard", score.jaccard)
        later = _later(item, dialogue_of)
        asked = [entity for entity in score.predicted if entity.strip()]
        add(item, "auv", metrics.auv(asked, later) if later is not None else None)
        if later:
            mentions.append((item, asked, later))
    replied = [(item, p.text) for item, p in pairs if p.text]
    if replied:
        values = metrics.embedding_similarity(
            [text for _, text in replied], [item.reference for item, _ in replied], embed
        )
        for (item, _), value in zip(replied, values, strict=True):
            add(item, "embedding_similarity", value)
    return rows, mentions


def _row(
    test_set: str, system: str, item: EvalItem, metric: str, value: float | None
) -> dict[str, Any]:
    return {"test_set": test_set, "system": system, "item_id": item.item_id, "metric": metric,
            "value": value}  # fmt: skip


def _later(item: EvalItem, dialogue_of: Dialogues) -> list[str] | None:
    """The patient's later real turns, or None when the dialogue is unknown."""
    dialogue = dialogue_of(item)
    if not dialogue:
        return None
    try:
        return metrics.later_patient_turns(item, dialogue)
    except ValueError:  # the key collides with another dialogue: no AUV rather than a wrong one
        return None


def _confusion(selection: metrics.ActionSelection) -> Confusion:
    matrix = selection.confusion
    return Confusion(
        tp_ask=matrix[ASK][ASK],
        fn_ask=matrix[ASK][TELL],
        fp_ask=matrix[TELL][ASK],
        tn_tell=matrix[TELL][TELL],
        no_action=sum(selection.no_action.values()),
    )


def summarise(scored: Scored, seed: int = 0) -> pl.DataFrame:
    """One row per (test set, system, metric): n, mean and its 95% bootstrap interval."""
    rows = []
    grouped = scored.scores.group_by("test_set", "system", "metric", maintain_order=True)
    for (test_set, system, metric), group in grouped:
        values = [v for v in group["value"].to_list() if v is not None]
        ci = metrics.bootstrap_ci(values, seed=seed)
        rows.append(
            {"test_set": test_set, "system": system, "metric": metric, "n": len(values),
             "value": ci[0] if ci else None, "ci_low": ci[1] if ci else None,
             "ci_high": ci[2] if ci else None}
        )  # fmt: skip
    for (test_set, system), value in scored.balanced.items():
        rows.append(
            {"test_set": test_set, "system": system, "metric": "balanced_accuracy",
             "n": sum(_counts(scored.confusion[(test_set, system)])), "value": value,
             "ci_low": None, "ci_high": None}
        )  # fmt: skip
    order = {name: i for i, name in enumerate(METRICS)}
    return pl.DataFrame(
        rows,
        schema={
            "test_set": pl.Utf8,
            "system": pl.Utf8,
            "metric": pl.Utf8,
            "n": pl.Int64,
            "value": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
        },
    ).sort(
        pl.col("test_set"),
        pl.col("system"),
        pl.col("metric").replace_strict(order, default=len(order), return_dtype=pl.Int64),
    )


def _counts(confusion: Confusion) -> tuple[int, ...]:
    return (
        confusion.tp_ask,
        confusion.fn_ask,
        confusion.fp_ask,
        confusion.tn_tell,
        confusion.no_action,
    )


def dialogue_lookup(
    by_conversation: Mapping[str, Sequence[Turn]], by_key: Mapping[str, Sequence[Turn]]
) -> Dialogues:
    """Find an item's dialogue by our conversation id, else by MedArk's key."""

    def find(item: EvalItem) -> Sequence[Turn] | None:
        if item.conversation_id and item.conversation_id in by_conversation:
            return by_conversation[item.conversation_id]
        return by_key.get(item.medark_key)

    return find


def kb_index(documents: pl.DataFrame) -> LexicalSearch:
    """A BM25 index of the knowledge base's documents (``kb_sources`` rows), for support."""
    from ark_assets.lib.knowledge.lexical import Bm25Index
    from ark_assets.lib.knowledge.retrieval import Hit

    hits = [
        Hit(row["doc_id"], row["question"], row["answer"], row.get("source"), 0.0)
        for row in documents.iter_rows(named=True)
    ]
    return Bm25Index(hits)


def dialogues_by(rows: pl.DataFrame, column: str) -> dict[str, list[Turn]]:
    """Whole dialogues (``turns_json``) keyed by ``column`` (conversation_id or medark_key)."""
    import json

    return {
        row[column]: [Turn.model_validate(t) for t in json.loads(row["turns_json"])]
        for row in rows.select(column, "turns_json").iter_rows(named=True)
    }


def evaluate(
    item_rows: pl.DataFrame,
    prediction_rows: pl.DataFrame,
    dialogues: pl.DataFrame,
    kb_sources: pl.DataFrame,
    *,
    embed: metrics.Embed,
    medark_compat: bool = False,
    seed: int = 0,
    judge: Judge | None = None,
    bertscore: judged.BertScorer | None = None,
) -> tuple[Scored, pl.DataFrame]:
    """Warehouse rows in (eval items, predictions, de-identified dialogues, KB documents), the
    per-item scores and the report's summary table out."""
    from ark_assets.lib.evaluation.tables import item_of, prediction_of

    items = [item_of(r) for r in item_rows.unique("item_id").iter_rows(named=True)]
    predictions = [
        (row["test_set"], prediction_of(row)) for row in prediction_rows.iter_rows(named=True)
    ]
    lookup = dialogue_lookup(
        dialogues_by(dialogues, "conversation_id"), dialogues_by(dialogues, "medark_key")
    )
    scored = score_all(
        items, predictions, dialogue_of=lookup, kb=kb_index(kb_sources), embed=embed,
        medark_compat=medark_compat, judge=judge, bertscore=bertscore,
    )  # fmt: skip
    return scored, summarise(scored, seed=seed)
