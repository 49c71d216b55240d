"""Offline metrics of one system's predictions against the evaluation items (no model, no judge).

What each metric means, and where it departs from MedArk's evaluation scripts:

- **Action selection**: the predicted action against the reference action, per system: accuracy
  (MedArk's "asks / N on an ask set, tells / N on a tell set" is this accuracy restricted to one
  set), recall per reference class, balanced accuracy and the 2×2 confusion matrix. A prediction
  without an action is decided by the offline question detector on its text; one with neither
  is counted as *no action* (wrong for either class), never dropped.
- **Ask quality**, on items where both the reference and the prediction ask: the entities asked
  (the seven lists, flattened in ``ENTITY_FIELDS`` order) against the reference's, by
  Levenshtein similarity, Dice (DSC) and Jaccard with a 0.8 string-similarity match threshold.
  ``medark_compat=True`` reproduces the definitions behind MedArk's published numbers, quirks
  included (see ``ask_quality``); that mode reproduces them, it does not endorse them.
- **AUV**: the share of asked entities the patient mentions in the later real turns, matched
  lexically (MedArk asks an LLM).
- **Lexical support**: the share of a reply's sentences whose best BM25 document shares at least
  half of their content tokens. An offline lexical proxy for groundedness in the knowledge base,
  not a hallucination judgement (that is ``judge.py``'s, with an LLM).
- **Similarity to the reference**: cosine of sentence embeddings (``embedding_similarity``), and
  BERTScore through the ``bert-score`` package with a local model (``bertscore``).
- **Bootstrap confidence intervals** of a mean (``bootstrap_ci``).

String similarity is rapidfuzz's ``fuzz.ratio / 100``: ``1 − indel(a, b) / (|a| + |b|)``, the
InDel-normalised Levenshtein similarity, equal to python-Levenshtein's ``ratio`` that MedArk uses
(both empty strings: 1).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from rapidfuzz import fuzz

from ark_assets.lib.evaluation.items import ASK, TELL, Action, EvalItem, Prediction
from ark_assets.lib.knowledge import lexical
from ark_assets.lib.knowledge.retrieval import LexicalSearch
from ark_assets.lib.synthesis import questions
from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.models import ENTITY_FIELDS, Entities, Turn
from ark_assets.lib.synthesis.teacher import TeacherRequest

ACTIONS: Final[tuple[Action, Action]] = ("ask", "tell")
# MedArk's match threshold for two entities (DSC, Jaccard) and our AUV mention threshold.
MATCH_THRESHOLD = 0.8
# rapidfuzz partial_ratio scale (0–100) of MATCH_THRESHOLD.
MENTION_THRESHOLD = 80.0
# A sentence is lexically supported when its best document holds at least half of its content.
SUPPORT_SHARE = 0.5
# The usual bootstrap defaults: 1,000 resamples, a 95% percentile interval.
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95

EntitiesOf = Callable[[str, str], Mapping[str, Sequence[str]]]  # (text, language) -> 7 lists
Embed = Callable[[list[str]], Any]  # texts -> one vector per text (list of lists or an array)


def _check_pair(item: EvalItem, prediction: Prediction) -> None:
    if prediction.item_id != item.item_id:
        raise ValueError(
            f"prediction of {prediction.system!r} is for item {prediction.item_id}, paired with "
            f"item {item.item_id}: join predictions to items on item_id"
        )


# --- Action selection -------------------------------------------------------------------------


def predicted_action(prediction: Prediction, language: str) -> Action | None:
    """The prediction's own action; else the question detector on its text; None with neither."""
    if prediction.action is not None:
        return prediction.action
    if prediction.text and prediction.text.strip():
        return ASK if questions.detect(prediction.text, language).is_asking else TELL
    return None


@dataclass(frozen=True)
class ActionSelection:
    """One system's ask/tell decisions against the reference actions."""

    system: str
    confusion: Mapping[Action, Mapping[Action, int]]  # reference -> predicted -> count
    no_action: Mapping[Action, int]  # reference -> predictions with neither action nor text
    detected: int  # predictions whose action the question detector decided (free text)
    unlabelled: int  # items without a reference action: not scored

    def reference_count(self, reference: Action) -> int:
        """Scored items whose reference action is ``reference`` (no-action predictions too)."""
        return sum(self.confusion[reference].values()) + self.no_action[reference]

    @property
    def n(self) -> int:
        return sum(self.reference_count(action) for action in ACTIONS)

    def recall(self, reference: Action) -> float | None:
        """Share of ``reference`` items predicted as ``reference``; None without such items."""
        total = self.reference_count(reference)
        return self.confusion[reference][reference] / total if total else None

    @property
    def accuracy(self) -> float | None:
        correct = sum(self.confusion[action][action] for action in ACTIONS)
        return correct / self.n if self.n else None

    @property
    def balanced_accuracy(self) -> float | None:
        """Mean recall over the reference classes present (on a one-class set: that recall)."""
        recalls = [r for action in ACTIONS if (r := self.recall(action)) is not None]
        return sum(recalls) / len(recalls) if recalls else None


def action_selection(
    pairs: Iterable[tuple[EvalItem, Prediction]],
    action_of: Callable[[EvalItem, Prediction], Action | None] | None = None,
) -> dict[str, ActionSelection]:
    """Action selection per system (``Prediction.system``), systems in name order. ``action_of``
    decides a prediction's action (default ``predicted_action``: its own, else the detector's;
    the judged report passes the judge's verdict for free text)."""
    confusion: dict[str, dict[Action, dict[Action, int]]] = {}
    no_action: dict[str, dict[Action, int]] = {}
    detected: dict[str, int] = defaultdict(int)
    unlabelled: dict[str, int] = defaultdict(int)
    for item, prediction in pairs:
        _check_pair(item, prediction)
        system = prediction.system
        matrix = confusion.setdefault(system, {r: dict.fromkeys(ACTIONS, 0) for r in ACTIONS})
        missing = no_action.setdefault(system, dict.fromkeys(ACTIONS, 0))
        if item.reference_action is None:
            unlabelled[system] += 1
            continue
        action = (
            action_of(item, prediction)
            if action_of is not None
            else predicted_action(prediction, item.language)
        )
        if action is None:
            missing[item.reference_action] += 1
            continue
        detected[system] += prediction.action is None
        matrix[item.reference_action][action] += 1
    return {
        system: ActionSelection(
            system, confusion[system], no_action[system], detected[system], unlabelled[system]
        )
        for system in sorted(confusion)
    }


# --- Ask quality ------------------------------------------------------------------------------


def similarity(a: str, b: str) -> float:
    """InDel-normalised Levenshtein similarity in [0, 1] (python-Levenshtein's ``ratio``)."""
    return fuzz.ratio(a, b) / 100


def flatten(entities: Mapping[str, Sequence[str]]) -> list[str]:
    """The seven lists as one list, in ``ENTITY_FIELDS`` order, each list in its own order."""
    return [value for name in ENTITY_FIELDS for value in entities.get(name, ())]


def rules_entities(text: str, language: str) -> dict[str, list[str]]:
    """The offline entity extractor: the rules teacher's entities stage (lexicon terms of the
    text's questions; its keywords as ``concept`` when the lexicon knows none)."""
    request = TeacherRequest("entities", language, Entities, [], {"reply": text})
    return Entities.model_validate_json(RulesBackend().complete(request).text).as_lists()


def levenshtein_similarity(predicted: Sequence[str], reference: Sequence[str]) -> float | None:
    """``similarity`` of the two entity lists each concatenated without separator.

    Order matters (the lists are compared as written, as MedArk does). None when both lists are
    empty (nothing to compare); 0 when only one is.
    """
    if not predicted and not reference:
        return None
    return similarity("".join(predicted), "".join(reference))


@dataclass(frozen=True)
class EntityOverlap:
    matched: int  # h: matched pairs (one-to-one), or MedArk's count of similar pairs
    dsc: float | None
    jaccard: float | None


def entity_overlap(
    predicted: Sequence[str],
    reference: Sequence[str],
    *,
    medark_compat: bool = False,
    threshold: float = MATCH_THRESHOLD,
) -> EntityOverlap:
    """Dice and Jaccard of two entity lists, two entities matching at ``similarity ≥ threshold``.

    Default: ``h`` is the size of a maximum one-to-one matching (each entity matches at most one
    of the other list), so ``DSC = 2h / (|P| + |G|)`` and ``Jaccard = h / (|P| + |G| − h)`` stay
    in [0, 1]. Both lists empty: None (undefined; such items are left out of means and counted
    by the caller); one empty: 0.

    ``medark_compat``: MedArk's scripts' definition: ``h`` counts every pair (i, j) with
    ``similarity ≥ threshold``, so a duplicate or an entity similar to two others counts twice
    and DSC and Jaccard can exceed 1 (Jaccard's denominator ``|P| − h + |G|`` can even reach 0 or
    below: 0 gives None, where MedArk's script would stop with a division by zero); both lists
    empty: 1; one empty: 0.
    """
    if not predicted and not reference:
        return EntityOverlap(0, 1.0, 1.0) if medark_compat else EntityOverlap(0, None, None)
    if not predicted or not reference:
        return EntityOverlap(0, 0.0, 0.0)
    similar = [[similarity(p, g) >= threshold for g in reference] for p in predicted]
    if medark_compat:
        h = sum(map(sum, similar))
        jaccard_denominator = len(predicted) - h + len(reference)
        jaccard = h / jaccard_denominator if jaccard_denominator else None
    else:
        h = _max_matching(similar)
        jaccard = h / (len(predicted) + len(reference) - h)
    return EntityOverlap(h, 2 * h / (len(predicted) + len(reference)), jaccard)


def _max_matching(edges: Sequence[Sequence[bool]]) -> int:
    """Size of a maximum bipartite matching (augmenting paths; the lists are a few entities)."""
    owner: dict[int, int] = {}  # reference index -> predicted index

    def augment(p: int, seen: set[int]) -> bool:
        for g, linked in enumerate(edges[p]):
            if linked and g not in seen:
                seen.add(g)
                if g not in owner or augment(owner[g], seen):
                    owner[g] = p
                    return True
        return False

    return sum(augment(p, set()) for p in range(len(edges)))


@dataclass(frozen=True)
class AskScore:
    """Ask quality of one prediction that asks, on an item whose reference asks."""

    system: str
    item_id: str
    predicted: tuple[str, ...]  # flattened entities asked
    reference: tuple[str, ...]  # flattened entities of the real doctor's question
    levenshtein: float | None
    dsc: float | None
    jaccard: float | None
    matched: int


def ask_quality(
    pairs: Iterable[tuple[EvalItem, Prediction]],
    *,
    entities_of: EntitiesOf = rules_entities,
    medark_compat: bool = False,
    action_of: Callable[[EvalItem, Prediction], Action | None] | None = None,
) -> list[AskScore]:
    """Ask quality of every pair whose reference and prediction both ask.

    The prediction's entities are its seven lists when it gave them (our agent's AskAction), else
    ``entities_of(text, language)``; the reference's are always ``entities_of(reference,
    language)`` (offline default: ``rules_entities``; with an LLM teacher, the caller passes the
    entity stage's extraction).

    ``medark_compat`` reproduces how MedArk's scripts computed their published numbers:
    - the entities become one string: each list concatenated, in ``ENTITY_FIELDS`` order, with a
      space between ``symptom`` and ``medcine``; ``levenshtein`` is ``similarity`` of these
      strings (an empty side included: it is never None);
    - DSC and Jaccard iterate the *characters* of these strings (spaces included) as if they were
      entities, with ``entity_overlap(..., medark_compat=True)``: with one-character "entities"
      the 0.8 threshold means equal characters, and every equal pair counts;
    - whether a side is empty is decided on the lists *without* ``symptom`` (MedArk's list
      flattening leaves it out): both empty → DSC = Jaccard = 1, one empty → 0.
    """
    scores: list[AskScore] = []
    for item, prediction in pairs:
        _check_pair(item, prediction)
        action = (
            action_of(item, prediction)
            if action_of is not None
            else predicted_action(prediction, item.language)
        )
        if item.reference_action != ASK or action != ASK:
            continue
        asked: Mapping[str, Sequence[str]] = (
            prediction.entities
            if prediction.entities is not None
            else entities_of(prediction.text or "", item.language)
        )
        wanted = entities_of(item.reference, item.language)
        predicted, reference = flatten(asked), flatten(wanted)
        if medark_compat:
            levenshtein: float | None = similarity(_medark_string(asked), _medark_string(wanted))
            overlap = _medark_overlap(asked, wanted)
        else:
            levenshtein = levenshtein_similarity(predicted, reference)
            overlap = entity_overlap(predicted, reference)
        scores.append(
            AskScore(
                prediction.system,
                item.item_id,
                tuple(predicted),
                tuple(reference),
                levenshtein,
                overlap.dsc,
                overlap.jaccard,
                overlap.matched,
            )
        )
    return scores


def _medark_string(entities: Mapping[str, Sequence[str]]) -> str:
    lists = ["".join(entities.get(name, ())) for name in ENTITY_FIELDS]
    return "".join(lists[:2]) + " " + "".join(lists[2:])


def _medark_overlap(
    predicted: Mapping[str, Sequence[str]], reference: Mapping[str, Sequence[str]]
) -> EntityOverlap:
    def blank(entities: Mapping[str, Sequence[str]]) -> bool:
        return not any(entities.get(name) for name in ENTITY_FIELDS if name != "symptom")

    if blank(predicted) or blank(reference):
        value = 1.0 if blank(predicted) and blank(reference) else 0.0
        return EntityOverlap(0, value, value)
    return entity_overlap(
        list(_medark_string(predicted)), list(_medark_string(reference)), medark_compat=True
    )


# --- AUV --------------------------------------------------------------------------------------


def later_patient_turns(item: EvalItem, dialogue: Sequence[Turn]) -> list[str]:
    """The patient's messages after the item's turn in its full ``dialogue`` (found in the tagged
    dialogues by ``item.medark_key`` or ``conversation_id``), as MedArk reads them for AUV."""
    turn = len(item.history)
    if len(dialogue) <= turn or dialogue[turn].patient != item.patient_message:
        raise ValueError(
            f"item {item.item_id}: the dialogue found for key {item.medark_key} does not hold the "
            f"item's patient message at turn {turn}; two dialogues share that first turn (the "
            "MedArk key collides): look the dialogue up by conversation_id instead"
        )
    return [later.patient for later in dialogue[turn + 1 :]]


def mentioned(asked: Sequence[str], later_patient_turns: Sequence[str]) -> list[str]:
    """The asked entities that occur in a later patient turn: as a substring (case-insensitive),
    or as a window of the turn at ``fuzz.partial_ratio ≥ 80`` (turns at least as long as the
    entity only, so a short reply such as "是" never matches inside a long entity)."""
    turns = [turn.lower() for turn in later_patient_turns]
    found: list[str] = []
    for entity in asked:
        wanted = entity.strip().lower()
        if wanted and any(
            wanted in turn
            or (len(turn) >= len(wanted) and fuzz.partial_ratio(wanted, turn) >= MENTION_THRESHOLD)
            for turn in turns
        ):
            found.append(entity)
    return found


def auv(asked: Sequence[str], later_patient_turns: Sequence[str]) -> float | None:
    """Share of the asked entities the patient mentions later; None when nothing was asked or
    the dialogue has no later turn. MedArk pools a test set (``Σ mentioned / Σ asked``): pool
    with ``mentioned`` to reproduce it, average this per-item share otherwise."""
    entities = [entity for entity in asked if entity.strip()]
    if not entities or not later_patient_turns:
        return None
    return len(mentioned(entities, later_patient_turns)) / len(entities)


# --- Lexical support --------------------------------------------------------------------------

# A sentence ends at 。！？!? (runs included), at a "." not followed by a digit (so 38.5 stays
# whole), or at a line break.
_SENTENCE_END = re.compile(r"(?<=[。！？!?])(?![。！？!?])|(?<=\.)(?![\d.])|\n+")
# Words any two texts share: counting them would make every sentence look supported.
_FUNCTION_WORD_TEXT = """
    的 了 是 我 你 您 他 她 它 我们 你们 他们 吗 呢 吧 啊 呀 哦 嗯 在 有 和 与 及 或 就 都 也 还
    很 这 那 这个 那个 一个 个 要 会 能 可以 不 没 没有 被 把 给 对 从 到 让 如果 但是 所以 因为
    而且 并且 等 一下 一些 一点 着 过 得 地 之 其 或者 可能 需要 建议 好 好的
    a an the is are was were be been being am i you he she it we they my your his her its our
    their this that these those of to in on at for with and or but if so as by from not no do
    does did have has had can could will would should may might there here what which who how
    when where why please also just very
"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_TEXT.split())


def split_sentences(text: str) -> list[str]:
    """Sentences of a reply, split at 。！？.!? and line breaks (see ``_SENTENCE_END``)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def content_tokens(text: str) -> set[str]:
    """Distinct tokens of ``lexical.tokenize`` (jieba words, lower-cased Latin words; the BM25
    index's tokens) that are not function words."""
    return {token for token in lexical.tokenize(text) if token not in _FUNCTION_WORDS}


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str
    content: int  # distinct content tokens of the sentence
    shared: int  # of those, tokens the best document's question + answer also has
    doc_id: str | None  # the best BM25 document; None when no document shares a term

    @property
    def supported(self) -> bool:
        return self.shared >= SUPPORT_SHARE * self.content


def sentence_support(reply: str, index: LexicalSearch) -> list[SentenceSupport]:
    """Each sentence of ``reply`` with content tokens, against its best BM25 document (the
    sentence is the query; ``index`` is a ``lexical.Bm25Index`` over the knowledge base)."""
    found: list[SentenceSupport] = []
    for sentence in split_sentences(reply):
        content = content_tokens(sentence)
        if not content:
            continue
        hits = index.search(sentence, 1)
        if not hits:
            found.append(SentenceSupport(sentence, len(content), 0, None))
            continue
        document = set(lexical.tokenize(f"{hits[0].question} {hits[0].answer}"))
        found.append(
            SentenceSupport(sentence, len(content), len(content & document), hits[0].doc_id)
        )
    return found


def lexical_support(reply: str | None, index: LexicalSearch) -> float | None:
    """Share of the reply's sentences that are lexically supported by the knowledge base: a
    sentence is when its best BM25 document's question + answer holds ≥ 50% of its distinct
    content tokens. An offline proxy (word overlap, not entailment); None for an empty reply or
    one without content tokens."""
    sentences = sentence_support(reply or "", index)
    if not sentences:
        return None
    return sum(s.supported for s in sentences) / len(sentences)


# --- Similarity to the reference --------------------------------------------------------------


def embedding_similarity(
    replies: Sequence[str], references: Sequence[str], embed: Embed
) -> list[float]:
    """Cosine similarity of each reply's embedding with its reference's (``embed``: texts to one
    vector each, e.g. an ``Embedder``'s ``embed_documents``); 0 when a vector is zero. This is
    sentence-embedding similarity, not BERTScore."""
    if len(replies) != len(references):
        raise ValueError(f"{len(replies)} replies but {len(references)} references")
    if not replies:
        return []
    a = np.asarray(embed(list(replies)), dtype=np.float64)
    b = np.asarray(embed(list(references)), dtype=np.float64)
    if a.shape != b.shape or a.shape[0] != len(replies):
        raise ValueError(f"embed returned shapes {a.shape} and {b.shape} for {len(replies)} texts")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    return [float(d / n) if n else 0.0 for d, n in zip(dots, norms, strict=True)]


@dataclass(frozen=True)
class BertScores:
    """Per-pair BERTScore, labelled as ``bert_score.score`` returns them (P, R, F1).

    MedArk's script unpacks ``score``'s ``(P, R, F)`` as ``r, p, f`` and then sums ``r`` into
    "bert r", ``p`` into "bert f" and ``f`` into "bert p": its "bert f" is recall, its "bert r"
    precision and its "bert p" F1.
    """

    precision: list[float]
    recall: list[float]
    f1: list[float]
    model: str
    num_layers: int


def bertscore(
    replies: Sequence[str],
    references: Sequence[str],
    model_path: str | Path,
    lang: str,
    *,
    num_layers: int,
    device: str | None = None,
    batch_size: int = 64,
) -> BertScores:
    """BERTScore of each reply (candidate) against its reference, with a local model directory.

    ``num_layers`` is the layer whose embeddings are compared: bert-score's tuned value for the
    model (bert-base-chinese, what ``lang="zh"`` selects in MedArk's script: 8). ``bert-score`` is
    not a dependency of ark-assets: install it where BERTScore is wanted.
    """
    if len(replies) != len(references):
        raise ValueError(f"{len(replies)} replies but {len(references)} references")
    path = Path(model_path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"BERTScore model directory {path} not found: download the model (e.g. "
            "bert-base-chinese) beforehand and pass its directory; nothing is fetched at run time"
        )
    if not replies:
        return BertScores([], [], [], str(path), num_layers)
    # A model directory needs no hub; offline mode makes a missing file fail instead of fetching.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import bert_score
    except ImportError as err:
        raise RuntimeError(
            "bertscore needs the bert-score package, which ark-assets does not install: "
            "`pip install bert-score` in this environment, or leave BERTScore out"
        ) from err
    precision, recall, f1 = bert_score.score(
        list(replies),
        list(references),
        model_type=str(path),
        num_layers=num_layers,
        lang=lang,
        device=device,
        batch_size=batch_size,
    )
    return BertScores(precision.tolist(), recall.tolist(), f1.tolist(), str(path), num_layers)


# --- Confidence intervals ---------------------------------------------------------------------


def bootstrap_ci(
    values: Iterable[float | None],
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float] | None:
    """``(mean, low, high)``: the mean of ``values`` (None skipped) and its percentile bootstrap
    interval (``n_resamples`` resamples with replacement, numpy generator seeded with ``seed``:
    the same values and seed give the same interval). None when no value is left."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(data.mean()), float(low), float(high)
