"""Evaluation metrics on hand-computed cases."""

from __future__ import annotations

import math
import statistics
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from ark_assets.lib.evaluation import metrics
from ark_assets.lib.evaluation.items import ASK, TELL, Action, EvalItem, Prediction
from ark_assets.lib.knowledge.embedders import HashingEmbedder
from ark_assets.lib.knowledge.lexical import Bm25Index
from ark_assets.lib.knowledge.retrieval import Hit
from ark_assets.lib.synthesis.models import ENTITY_FIELDS, Turn
from ark_assets.testing.tiny import save_random_bert


def _item(
    item_id: str,
    action: Action | None,
    reference: str = "请问您发烧几天了？",
    patient: str = "医生，我发烧了。",
    history: tuple[Turn, ...] = (),
) -> EvalItem:
    return EvalItem(
        item_id=item_id,
        test_set="zh_med_ask" if action == ASK else "zh_med_tell",
        language="zh",
        history=history,
        patient_message=patient,
        reference=reference,
        reference_action=action,
        medark_key="k-" + item_id,
    )


def _prediction(
    item_id: str,
    action: Action | None,
    text: str | None = "好的。",
    system: str = "sft",
    entities: dict[str, list[str]] | None = None,
) -> Prediction:
    return Prediction(system, item_id, text, action, "tool" if action else "none", entities)


# --- Action selection -------------------------------------------------------------------------


def _five_hand_labelled() -> list[tuple[EvalItem, Prediction]]:
    return [
        (_item("i1", ASK), _prediction("i1", ASK)),  # ask → ask (tool)
        (_item("i2", ASK), _prediction("i2", None, "您发烧几天了？")),  # detector: ask
        (_item("i3", ASK), _prediction("i3", None, None)),  # no action, no text
        (_item("i4", TELL), _prediction("i4", ASK)),  # tell → ask
        (_item("i5", TELL), _prediction("i5", None, "多喝水，注意休息。")),  # detector: tell
    ]


def test_confusion_matrix_of_five_hand_labelled_predictions() -> None:
    result = metrics.action_selection(_five_hand_labelled())["sft"]
    assert result.confusion == {ASK: {ASK: 2, TELL: 0}, TELL: {ASK: 1, TELL: 1}}
    assert result.no_action == {ASK: 1, TELL: 0}
    assert (result.n, result.detected, result.unlabelled) == (5, 2, 0)
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.recall(ASK) == pytest.approx(2 / 3)  # the no-action prediction counts as wrong
    assert result.recall(TELL) == pytest.approx(1 / 2)
    assert result.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_medark_accuracy_is_asks_over_n_on_an_ask_set() -> None:
    ask_set = _five_hand_labelled()[:3]
    result = metrics.action_selection(ask_set)["sft"]
    assert result.accuracy == pytest.approx(2 / 3)  # asks / N, the failed item in N
    assert result.recall(TELL) is None
    assert result.balanced_accuracy == pytest.approx(2 / 3)  # only one class present


def test_action_selection_per_system_and_unlabelled_items() -> None:
    pairs = [
        (_item("i1", ASK), _prediction("i1", ASK, system="b")),
        (_item("i1", ASK), _prediction("i1", TELL, system="a")),
        (_item("i2", None), _prediction("i2", TELL, system="a")),
    ]
    results = metrics.action_selection(pairs)
    assert list(results) == ["a", "b"]
    assert results["a"].accuracy == 0.0 and results["a"].unlabelled == 1 and results["a"].n == 1
    assert results["b"].accuracy == 1.0


def test_a_prediction_paired_with_another_item_is_refused() -> None:
    with pytest.raises(ValueError, match="join predictions to items on item_id"):
        metrics.action_selection([(_item("i1", ASK), _prediction("i2", ASK))])


def test_predicted_action_prefers_the_system_action_over_the_detector() -> None:
    assert metrics.predicted_action(_prediction("i", TELL, "您发烧几天了？"), "zh") == TELL
    assert metrics.predicted_action(_prediction("i", None, "  "), "zh") is None


# --- Ask quality ------------------------------------------------------------------------------

P = ["发热", "咳嗽"]
G = ["发烧", "咳嗽", "头痛"]


def test_similarity_is_the_indel_normalised_levenshtein_ratio() -> None:
    assert metrics.similarity("发热", "发烧") == pytest.approx(0.5)  # 1 − 2/4
    assert metrics.similarity("头痛", "头痛了") == pytest.approx(0.8)  # 1 − 1/5
    assert metrics.similarity("", "") == 1.0


def test_dice_and_jaccard_with_the_threshold() -> None:
    # 发热/发烧 = 0.5 < 0.8: only 咳嗽 matches, h = 1.
    overlap = metrics.entity_overlap(P, G)
    assert overlap.matched == 1
    assert overlap.dsc == pytest.approx(2 * 1 / (2 + 3))
    assert overlap.jaccard == pytest.approx(1 / (2 + 3 - 1))
    compat = metrics.entity_overlap(P, G, medark_compat=True)
    assert (compat.matched, compat.dsc, compat.jaccard) == (1, overlap.dsc, overlap.jaccard)


def test_one_to_one_matching_is_maximal_and_medark_counts_pairs() -> None:
    # similarities: 头痛–头痛 1, 头痛–头痛啊 0.8, 头痛了–头痛 0.8, 头痛了–头痛啊 2/3.
    predicted, reference = ["头痛", "头痛了"], ["头痛", "头痛啊"]
    ours = metrics.entity_overlap(predicted, reference)
    # Greedy 头痛–头痛 would leave 头痛了 unmatched; the maximum is 头痛–头痛啊, 头痛了–头痛.
    assert (ours.matched, ours.dsc, ours.jaccard) == (2, 1.0, 1.0)
    medark = metrics.entity_overlap(predicted, reference, medark_compat=True)
    assert medark.matched == 3
    assert medark.dsc == pytest.approx(2 * 3 / 4)  # > 1
    assert medark.jaccard == pytest.approx(3 / (2 - 3 + 2))  # 3


def test_medark_jaccard_with_a_zero_denominator_is_none() -> None:
    medark = metrics.entity_overlap(["咳嗽", "咳嗽"], ["咳嗽", "咳嗽"], medark_compat=True)
    assert medark.matched == 4 and medark.dsc == pytest.approx(2.0) and medark.jaccard is None


@pytest.mark.parametrize("medark_compat", [False, True])
def test_empty_entity_lists(medark_compat: bool) -> None:
    both = metrics.entity_overlap([], [], medark_compat=medark_compat)
    expected = 1.0 if medark_compat else None
    assert (both.dsc, both.jaccard) == (expected, expected)
    for predicted, reference in ((["咳嗽"], []), ([], ["咳嗽"])):
        one = metrics.entity_overlap(predicted, reference, medark_compat=medark_compat)
        assert (one.matched, one.dsc, one.jaccard) == (0, 0.0, 0.0)


def test_levenshtein_similarity_of_the_concatenated_lists() -> None:
    # "发热咳嗽" vs "发烧咳嗽头痛": common subsequence 发咳嗽 (3), indel = 4 + 6 − 2·3 = 4.
    assert metrics.levenshtein_similarity(P, G) == pytest.approx(1 - 4 / 10)
    assert metrics.levenshtein_similarity([], []) is None
    assert metrics.levenshtein_similarity(["咳嗽"], []) == 0.0


def _lists(**values: list[str]) -> dict[str, list[str]]:
    return {name: values.get(name, []) for name in ENTITY_FIELDS}


def _fixed_entities(table: dict[str, dict[str, list[str]]]) -> metrics.EntitiesOf:
    def entities_of(text: str, language: str) -> dict[str, list[str]]:
        assert language == "zh"
        return table[text]

    return entities_of


def test_ask_quality_on_pairs_where_both_ask() -> None:
    extract = _fixed_entities(
        {
            "请问您发烧几天了？": _lists(symptom=G),
            "咳嗽几天了？": _lists(symptom=["咳嗽"], concept=["几天"]),
        }
    )
    pairs = [
        (_item("i1", ASK), _prediction("i1", ASK, entities=_lists(symptom=P))),
        (_item("i2", ASK), _prediction("i2", None, "咳嗽几天了？")),  # extracted from its text
        (_item("i3", ASK), _prediction("i3", TELL)),  # the prediction tells: not scored
        (_item("i4", TELL), _prediction("i4", ASK)),  # the reference tells: not scored
    ]
    first, second = metrics.ask_quality(pairs, entities_of=extract)
    assert (first.item_id, first.predicted, first.reference) == ("i1", tuple(P), tuple(G))
    assert (first.levenshtein, first.dsc, first.jaccard) == pytest.approx((0.6, 0.4, 0.25))
    # ["咳嗽", "几天"] vs G: h = 1 → DSC 2/5, Jaccard 1/4; "咳嗽几天" vs "发烧咳嗽头痛": indel 6.
    assert second.predicted == ("咳嗽", "几天")
    assert (second.levenshtein, second.dsc, second.jaccard) == pytest.approx((0.4, 0.4, 0.25))


def test_ask_quality_medark_compat_reproduces_the_scripts_quirks() -> None:
    extract = _fixed_entities(
        {
            "请问您发烧几天了？": _lists(symptom=G),
            "几天了？": _lists(concept=["几天"]),
        }
    )
    only_symptoms = (_item("i1", ASK), _prediction("i1", ASK, entities=_lists(symptom=P)))
    (score,) = metrics.ask_quality([only_symptoms], entities_of=extract, medark_compat=True)
    # Emptiness is decided without `symptom`: both sides "empty" → 1.
    assert (score.dsc, score.jaccard) == (1.0, 1.0)
    # "发热咳嗽 " vs "发烧咳嗽头痛 " (the space MedArk writes before medcine): LCS 4, indel 4.
    assert score.levenshtein == pytest.approx(1 - 4 / 12)

    asked = _lists(symptom=["咳嗽"], concept=["几天"])
    pair = (_item("i2", ASK, reference="几天了？"), _prediction("i2", ASK, entities=asked))
    (compat,) = metrics.ask_quality([pair], entities_of=extract, medark_compat=True)
    # Characters of "咳嗽 几天" vs " 几天": equal pairs (space, 几, 天) → h = 3.
    assert compat.matched == 3
    assert compat.dsc == pytest.approx(2 * 3 / (5 + 3))
    assert compat.jaccard == pytest.approx(3 / (5 - 3 + 3))
    assert compat.levenshtein == pytest.approx(1 - 2 / 8)
    (ours,) = metrics.ask_quality([pair], entities_of=extract)
    assert (ours.matched, ours.dsc, ours.jaccard) == (1, pytest.approx(2 / 3), 0.5)


def test_rules_entities_is_the_offline_extractor() -> None:
    found = metrics.rules_entities("请问您发烧几天了？有没有咳嗽？", "zh")
    assert found == _lists(symptom=["发烧", "咳嗽"], concept=["几天"])


# --- AUV --------------------------------------------------------------------------------------

DIALOGUE = [
    Turn(patient="医生，我发烧了。", doctor="发烧几天了？有没有咳嗽、头痛？有高血压病史吗？"),
    Turn(patient="发烧三天了，没有咳嗽。", doctor="量过体温吗？"),
    Turn(patient="我有高血压史。", doctor="好的。"),
]


def test_auv_on_a_tiny_dialogue() -> None:
    item = _item("i1", ASK, reference=DIALOGUE[0].doctor)
    later = metrics.later_patient_turns(item, DIALOGUE)
    assert later == ["发烧三天了，没有咳嗽。", "我有高血压史。"]
    asked = ["发烧", "咳嗽", "头痛", "高血压病史"]
    # 发烧, 咳嗽: substrings; 高血压病史 ≈ 高血压史 (partial_ratio ≥ 80); 头痛: never said.
    assert metrics.mentioned(asked, later) == ["发烧", "咳嗽", "高血压病史"]
    assert metrics.auv(asked, later) == pytest.approx(3 / 4)


def test_auv_is_none_without_asked_entities_or_later_turns() -> None:
    assert metrics.auv([], ["发烧三天了"]) is None
    assert metrics.auv(["  "], ["发烧三天了"]) is None
    assert metrics.auv(["发烧"], []) is None
    assert metrics.auv(["高血压病史"], ["是"]) == 0.0  # a short turn never matches inside


def test_later_turns_of_a_colliding_dialogue_are_refused() -> None:
    item = _item("i1", ASK, patient="另一段对话的第一句")
    with pytest.raises(ValueError, match="look the dialogue up by conversation_id"):
        metrics.later_patient_turns(item, DIALOGUE)


# --- Lexical support --------------------------------------------------------------------------

KB = [
    Hit("d1", "感冒发烧怎么办", "多喝水，注意休息，体温超过38.5度可以服用布洛芬。", None, 0.0),
    Hit("d2", "高血压饮食注意什么", "高血压患者应低盐饮食，坚持适量运动。", None, 0.0),
]


def test_support_on_a_two_document_kb() -> None:
    index = Bm25Index(KB)
    reply = "多喝水，注意休息。高血压患者应低盐饮食。每天吃苹果能治愈癌症。"
    first, second, third = metrics.sentence_support(reply, index)
    assert (first.doc_id, first.content, first.shared) == ("d1", 3, 3)  # 多喝水 注意 休息
    assert (second.doc_id, second.content, second.shared) == ("d2", 5, 5)
    assert (third.doc_id, third.shared, third.supported) == (None, 0, False)  # no shared term
    assert metrics.lexical_support(reply, index) == pytest.approx(2 / 3)


def test_half_the_content_tokens_is_enough() -> None:
    (sentence,) = metrics.sentence_support("注意休息，每天跑步。", Bm25Index(KB))
    # 注意 休息 每天 跑步: the best document (d1) has 注意 and 休息: 2/4 = 50%.
    assert (sentence.doc_id, sentence.content, sentence.shared) == ("d1", 4, 2)
    assert sentence.supported


def test_support_is_none_for_an_empty_reply() -> None:
    index = Bm25Index(KB)
    assert metrics.lexical_support("", index) is None
    assert metrics.lexical_support(None, index) is None
    assert metrics.lexical_support("好的。", index) is None  # no content token to check


def test_sentences_split_at_terminal_punctuation_and_line_breaks() -> None:
    text = "体温38.5度！还有吗？？Take a rest. OK\n第二行"
    assert metrics.split_sentences(text) == [
        "体温38.5度！",
        "还有吗？？",
        "Take a rest.",
        "OK",
        "第二行",
    ]


# --- Similarity to the reference --------------------------------------------------------------


def test_embedding_similarity_is_the_cosine() -> None:
    vectors = {"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [1.0, 1.0], "z": [0.0, 0.0]}

    def embed(texts: list[str]) -> list[list[float]]:
        return [vectors[t] for t in texts]

    found = metrics.embedding_similarity(["a", "a", "a", "z"], ["a", "b", "c", "a"], embed)
    assert found == pytest.approx([1.0, 0.0, 1 / math.sqrt(2), 0.0])
    assert metrics.embedding_similarity([], [], embed) == []
    with pytest.raises(ValueError, match="1 replies but 2 references"):
        metrics.embedding_similarity(["a"], ["a", "b"], embed)


def test_embedding_similarity_with_the_bundled_embedder() -> None:
    embed = HashingEmbedder().embed_documents
    same, other = metrics.embedding_similarity(
        ["多喝水。", "多喝水。"], ["多喝水。", "做手术。"], embed
    )
    assert same == pytest.approx(1.0) and other < same


class _Scores(list[float]):
    def tolist(self) -> list[float]:
        return list(self)


def test_bertscore_keeps_the_labels_bert_score_returns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []

    def score(cands: list[str], refs: list[str], **kwargs: Any) -> tuple[_Scores, ...]:
        calls.append({"cands": cands, "refs": refs, **kwargs})
        return _Scores([0.1]), _Scores([0.2]), _Scores([0.3])  # documented order: P, R, F

    monkeypatch.setitem(sys.modules, "bert_score", types.SimpleNamespace(score=score))
    result = metrics.bertscore(["回复"], ["参考"], tmp_path, "zh", num_layers=8)
    assert (result.precision, result.recall, result.f1) == ([0.1], [0.2], [0.3])
    assert calls[0]["cands"] == ["回复"] and calls[0]["refs"] == ["参考"]
    assert calls[0]["model_type"] == str(tmp_path) and calls[0]["num_layers"] == 8


def test_bertscore_says_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download the model"):
        metrics.bertscore(["a"], ["b"], tmp_path / "absent", "zh", num_layers=8)
    monkeypatch.setitem(sys.modules, "bert_score", None)  # import fails as if not installed
    with pytest.raises(RuntimeError, match="pip install bert-score"):
        metrics.bertscore(["a"], ["b"], tmp_path, "zh", num_layers=8)


def test_bertscore_with_the_real_package(tmp_path: Path) -> None:
    model = save_random_bert(tmp_path / "bert", "多喝水做手术")
    result = metrics.bertscore(
        ["多喝水", "做手术"], ["多喝水", "多喝水"], model, "zh", num_layers=1
    )
    assert result.f1[0] == pytest.approx(1.0, abs=1e-4)
    assert result.f1[1] < 0.999  # different characters: not a perfect match
    assert len(result.precision) == len(result.recall) == 2


# --- Bootstrap --------------------------------------------------------------------------------


def test_bootstrap_ci_contains_the_mean_and_is_deterministic() -> None:
    values: list[float | None] = [(i * 37 % 101) / 100 for i in range(40)]
    interval = metrics.bootstrap_ci([*values, None], seed=3)  # None skipped
    assert interval is not None
    mean, low, high = interval
    assert mean == pytest.approx(statistics.fmean(v for v in values if v is not None))
    assert 0.0 <= low < mean < high <= 1.0
    assert metrics.bootstrap_ci(values, seed=3) == (mean, low, high)
    other = metrics.bootstrap_ci(values, seed=4)
    assert other is not None and other[0] == mean and other[1:] != (low, high)


def test_bootstrap_ci_of_degenerate_samples() -> None:
    assert metrics.bootstrap_ci([None, None]) is None
    assert metrics.bootstrap_ci([0.4]) == pytest.approx((0.4, 0.4, 0.4))
    assert metrics.bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
