"""Reading MedArk's published evaluation files into items and predictions.

One file is one of four kinds, told apart by its content:

- ``items``: a JSON list (or JSONL) of ``{"instruction", "conversation"}``; the last turn's
  doctor reply is the reference, its patient message the prompt, earlier turns the history.
- ``results``: ``[{"model": reply, "src": item}]``, a baseline's free-text replies. MedArk's
  files carry ``reply`` as a string or as ``[text, [{"token", "prob"}, ...]]``; only the text
  (the first element, as MedArk's eval script reads it) is kept. Whether a reply asks is left
  to the caller's question detector.
- ``medrag``: the same with ``model = {"dialogue_analysis", "is_asking", "response"}`` or
  ``null``; ``is_asking`` gives the action. Each record is read by the form of its own ``model``;
  a file with any MedRAG object is of this kind.
- ``records``: MedArk's own agent output, ``records.pkl``, read through the restricted
  unpickler in ``unpickle``; the final action's class (AskAction/TellAction) gives the action.

Every record is accepted or quarantined (``records_read = accepted + len(rejections)``). A record
whose system gave no answer (``null``, an empty reply, no final action) is quarantined but still
yields its item, so our systems are evaluated on it, and a ``Prediction`` with ``failure`` set, so
the metrics can count the miss against that system instead of silently shrinking its test set.
Where the record is malformed, the rule names are the ingest layer's (``lib.ingest.dialogues.Rule``)
for the same faults, plus ``EvalRule`` for the evaluation-only ones.
"""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Final

from ark_assets.lib.evaluation.items import ASK, TELL, Action, EvalItem, Prediction, item_id
from ark_assets.lib.evaluation.unpickle import CLASS_KEY, UnsafePickle, load_plain
from ark_assets.lib.hashing import medark_key
from ark_assets.lib.ingest.dialogues import (
    TURN_KEYS,
    Limits,
    RecordError,
    Rejection,
    Rule,
    excerpt_of,
    is_blank,
    shown_name,
    shown_names,
    validate_record,
)
from ark_assets.lib.ingest.formats import Parsed, file_suffix, read_json_list, read_jsonl
from ark_assets.lib.language import detect_language
from ark_assets.lib.synthesis.models import ENTITY_FIELDS, Turn

ITEMS: Final = "items"
RESULTS: Final = "results"
MEDRAG: Final = "medrag"
RECORDS: Final = "records"
UNKNOWN: Final = "unknown"  # the file could not be read far enough to tell

# Four real-turn limits: a baseline may ramble past any doctor's turn, but a longer reply is a
# generation loop, and BERTScore and the judges would truncate or bill it anyway.
MAX_REPLY_CHARS = 16_000
# MedRAG's null records nest a whole {model, src} record in ``src``; deeper is not MedArk's.
_MAX_SRC_NESTING = 3
_MEDARK_SET = re.compile(r"(?:^|_)((?:non_)?zh_med_(?:ask|tell))(?:_|$)")
_PICKLE_SUFFIXES = ("pkl", "pickle")
_JSON_SUFFIXES = ("json", "jsonl")
_BOM_AND_SPACE = b"\xef\xbb\xbf \t\r\n"
_PICKLE_PROTOCOL_2_PLUS = b"\x80"


class EvalRule:
    """Quarantine rules of the evaluation importers (the others are ``Rule``'s)."""

    NO_REFERENCE = "no_reference"
    NULL_REPLY = "null_reply"
    EMPTY_REPLY = "empty_reply"
    NO_FINAL_ACTION = "no_final_action"
    UNSAFE_PICKLE = "unsafe_pickle"
    BAD_PICKLE = "bad_pickle"

    # The system answered nothing: the record still yields its item and a failed prediction.
    NO_ANSWER = (NULL_REPLY, EMPTY_REPLY, NO_FINAL_ACTION)
    ALL = (NO_REFERENCE, NULL_REPLY, EMPTY_REPLY, NO_FINAL_ACTION, UNSAFE_PICKLE, BAD_PICKLE)


@dataclass
class ImportResult:
    """Everything read from one evaluation file."""

    kind: str  # ITEMS, RESULTS, MEDRAG, RECORDS, or UNKNOWN when unreadable
    system: str | None  # the file stem for a system's answers; None for an item file
    items: list[EvalItem] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)  # failed ones included
    rejections: list[Rejection] = field(default_factory=list)
    records_read: int = 0

    @property
    def accepted(self) -> int:
        """Records read without quarantine: an item, or an item with an answered prediction."""
        if self.kind == ITEMS:
            return len(self.items)
        return sum(1 for prediction in self.predictions if prediction.failure is None)


class _NoAnswer(RecordError):
    """The system gave no answer for a valid item (one of ``EvalRule.NO_ANSWER``)."""


@dataclass(frozen=True)
class _File:
    kind: str
    system: str | None
    test_set: str
    reference_action: Action | None
    limits: Limits

    @property
    def failure_source(self) -> str:
        """The action source a failed prediction gets: what would have decided its action."""
        return {MEDRAG: "is_asking", RECORDS: "tool"}.get(self.kind, "detector")


def read_eval_file(name: str, data: bytes, limits: Limits | None = None) -> ImportResult:
    """Read one MedArk evaluation file; bad content is quarantined, never raised."""
    stem = PurePath(name).stem
    test_set = eval_set_name(stem)
    pickled = _is_pickle(name, data)
    entries = _pickle_entries(data) if pickled else _json_entries(name, data)
    kind = _kind_of(entries, pickled)
    system = None if kind in (ITEMS, UNKNOWN) else system_name(stem, test_set)
    file = _File(kind, system, test_set, _action_of(test_set), limits or Limits())
    result = ImportResult(kind=kind, system=system, records_read=len(entries))
    for entry in entries:
        if isinstance(entry, Rejection):
            result.rejections.append(entry)
        else:
            _add(result, *entry, file)
    return result


def eval_set_name(stem: str) -> str:
    """The MedArk test set a file stem names (``lora_sft_non_zh_med_ask_records`` →
    ``non_zh_med_ask``; hyphens read as underscores), else the stem itself."""
    found = _MEDARK_SET.search(stem.replace("-", "_"))
    return found.group(1) if found else stem


def system_name(stem: str, test_set: str) -> str:
    """A result file's system: its stem less the test set's name (``BianQue-2_zh_med_ask`` →
    ``BianQue-2``), so the same system's files for several sets share one leaderboard row."""
    normalised = stem.replace("-", "_")
    start = normalised.find(test_set) if test_set != stem else -1
    if start < 0:
        return stem
    name = re.sub(r"[_-]{2,}", "_", stem[:start] + "_" + stem[start + len(test_set) :])
    return name.strip("_- ") or stem


def _action_of(test_set: str) -> Action | None:
    if test_set.endswith("_ask"):
        return ASK
    if test_set.endswith("_tell"):
        return TELL
    return None


def _is_pickle(name: str, data: bytes) -> bool:
    suffix = file_suffix(name)
    if suffix in _PICKLE_SUFFIXES:
        return True
    return suffix not in _JSON_SUFFIXES and data.startswith(_PICKLE_PROTOCOL_2_PLUS)


def _json_entries(name: str, data: bytes) -> list[Parsed]:
    suffix = file_suffix(name)
    opening = data.lstrip(_BOM_AND_SPACE)[:1]
    if suffix == "jsonl" or (suffix != "json" and opening == b"{"):
        return list(read_jsonl(data))
    if suffix == "json" or opening == b"[":
        return list(read_json_list(data, "evaluation items or result records"))
    message = (
        f"{shown_name(name)} is neither JSON, JSONL nor a pickle; MedArk's evaluation files are "
        ".json lists of items or {model, src} results, .jsonl, or records.pkl"
    )
    return [Rejection(None, Rule.UNSUPPORTED_FORMAT, message, excerpt_of(data[:120]))]


def _pickle_entries(data: bytes) -> list[Parsed]:
    try:
        loaded = load_plain(data)
    except UnsafePickle as err:
        rule, message = EvalRule.UNSAFE_PICKLE, f"{err}; re-export the records as plain data"
    except pickle.UnpicklingError as err:
        rule, message = EvalRule.BAD_PICKLE, f"the file is {err}: truncated? nothing was read"
    else:
        if isinstance(loaded, list | tuple):
            return list(enumerate(loaded))
        rule = Rule.WRONG_SHAPE
        message = f"a records pickle holds a list of records, got {_type(loaded)}"
    return [Rejection(None, rule, message, excerpt_of(data[:120]))]


def _kind_of(entries: list[Parsed], pickled: bool) -> str:
    """What the file holds, from its records.

    A pickle holds MedArk's records (lists) or, like its inference input, items (dicts). A JSON
    file holds items unless its first object is a {model, src} result, MedRAG's if any model is
    an object.
    """
    records = [entry[1] for entry in entries if not isinstance(entry, Rejection)]
    if not records:
        return UNKNOWN
    if pickled:
        return ITEMS if isinstance(records[0], dict) else RECORDS
    first = next((record for record in records if isinstance(record, dict)), None)
    if first is None or ("src" not in first and "model" not in first):
        return ITEMS
    medrag = any(isinstance(r, dict) and isinstance(r.get("model"), dict) for r in records)
    return MEDRAG if medrag else RESULTS


def _add(result: ImportResult, index: int, raw: Any, file: _File) -> None:
    """Turn one parsed record into an item, a prediction and/or a rejection."""
    try:
        if file.kind == RECORDS:
            src, reply = _split_records_entry(raw)
        elif file.kind in (RESULTS, MEDRAG):
            src, reply = _split_result(raw)
        else:
            src, reply = raw, None
        item = _eval_item(index, src, file)
    except RecordError as err:
        result.rejections.append(Rejection(index, err.rule, str(err), excerpt_of(raw)))
        return
    result.items.append(item)
    if file.kind == ITEMS:
        return
    try:
        result.predictions.append(_prediction(reply, item, file))
    except _NoAnswer as err:
        result.predictions.append(
            Prediction(
                system=file.system or "",
                item_id=item.item_id,
                text=None,
                action=None,
                action_source=file.failure_source,
                failure=err.rule,
            )
        )
        result.rejections.append(Rejection(index, err.rule, str(err), excerpt_of(raw)))
    except RecordError as err:
        result.rejections.append(Rejection(index, err.rule, str(err), excerpt_of(raw)))


def _split_result(raw: Any) -> tuple[Any, Any]:
    if not isinstance(raw, dict):
        raise RecordError(
            Rule.WRONG_SHAPE, f"a result record is an object {{model, src}}, got {_type(raw)}"
        )
    if "src" not in raw or "model" not in raw:
        raise RecordError(
            Rule.WRONG_KEYS,
            f"a result record has the keys 'model' and 'src', got {shown_names(raw)}",
        )
    src = raw["src"]
    for _ in range(_MAX_SRC_NESTING):
        if isinstance(src, dict) and "conversation" not in src and "src" in src:
            src = src["src"]
    return src, raw["model"]


def _split_records_entry(raw: Any) -> tuple[Any, Any]:
    if not isinstance(raw, list | tuple) or len(raw) != 4:
        got = f"{len(raw)} elements" if isinstance(raw, list | tuple) else _type(raw)
        raise RecordError(
            Rule.WRONG_SHAPE,
            "a records.pkl entry is [item, [RetrievalAction...], final action, probabilities], "
            f"got {got}",
        )
    return raw[0], raw


def _eval_item(index: int, src: Any, file: _File) -> EvalItem:
    if not isinstance(src, dict):
        raise RecordError(
            Rule.WRONG_SHAPE,
            f"an evaluation item is an object {{instruction, conversation}}, got {_type(src)}",
        )
    if "conversation" not in src:
        raise RecordError(
            Rule.WRONG_KEYS,
            f"the item has no 'conversation' (keys: {shown_names(src)}); an item is "
            "{instruction, conversation: [{patient, doctor}, ...]}",
        )
    instruction = src.get("instruction", "")
    if not isinstance(instruction, str):
        raise RecordError(
            Rule.WRONG_TYPE, f"instruction must be a string, got {_type(instruction)}"
        )
    conversation = src["conversation"]
    if isinstance(conversation, list) and conversation:
        last = conversation[-1]
        if (
            isinstance(last, dict)
            and isinstance(last.get("doctor"), str)
            and is_blank(last["doctor"])
        ):
            raise RecordError(
                EvalRule.NO_REFERENCE,
                f"the last turn's doctor reply (turn {len(conversation) - 1}) is empty: it is the "
                "reference every metric compares with; drop the item or restore the reply",
            )
    # Declaring a language skips the ingest detector, which rejects text without letters:
    # MedArk's zh_med sets hold two such (mojibake) items, and the paper counts them.
    record = {"conversation": conversation, "language": "zh"}
    outcome = validate_record(index, record, file.kind, file.limits)
    if isinstance(outcome, Rejection):
        raise RecordError(outcome.rule, outcome.message)
    turns = outcome.turns
    history = tuple(Turn(**turn) for turn in turns[:-1])
    patient, reference = turns[-1]["patient"], turns[-1]["doctor"]
    text = " ".join(turn[key] for turn in turns for key in TURN_KEYS)
    return EvalItem(
        item_id=item_id(history, patient, reference),
        test_set=file.test_set,
        language=detect_language(text) or "en",
        history=history,
        patient_message=patient,
        reference=reference,
        reference_action=file.reference_action,
        medark_key=medark_key(turns[0]),
        instruction=instruction,
    )


def _prediction(reply: Any, item: EvalItem, file: _File) -> Prediction:
    assert file.system is not None  # set for every kind with answers
    if file.kind == RECORDS:
        return _records_prediction(reply, item, file.system)
    _check_answered(reply)
    if isinstance(reply, dict):
        text, action = _medrag_reply(reply)
    else:
        text, action = _free_text(reply), None
    return Prediction(
        system=file.system,
        item_id=item.item_id,
        text=text,
        action=action,
        action_source="is_asking" if action else "detector",
    )


def _check_answered(reply: Any) -> None:
    if reply is None:
        raise _NoAnswer(EvalRule.NULL_REPLY, "model is null: the system gave no reply")
    if isinstance(reply, float) and math.isnan(reply):
        raise _NoAnswer(
            EvalRule.NULL_REPLY,
            "model is NaN, a missing value (as pandas writes one): the system gave no reply",
        )


def _free_text(reply: Any) -> str:
    if isinstance(reply, list):
        if not reply:
            raise _NoAnswer(EvalRule.EMPTY_REPLY, "model is an empty list: no reply text")
        reply = reply[0]  # MedArk's [text, token probabilities]
        if not isinstance(reply, str):
            raise RecordError(
                Rule.WRONG_TYPE, f"model[0] must be the reply text, got {_type(reply)}"
            )
    if not isinstance(reply, str):
        raise RecordError(
            Rule.WRONG_TYPE,
            "model must be the reply text (a string or [text, ...]), MedRAG's "
            f"{{dialogue_analysis, is_asking, response}} or null; got {_type(reply)}",
        )
    return _reply_text(reply, "model")


def _medrag_reply(reply: dict[str, Any]) -> tuple[str, Action]:
    missing = [key for key in ("is_asking", "response") if key not in reply]
    if missing:
        raise RecordError(
            Rule.WRONG_KEYS,
            f"MedRAG's model lacks {missing} (keys: {shown_names(reply)}); it holds "
            "{dialogue_analysis, is_asking, response}",
        )
    is_asking, response = reply["is_asking"], reply["response"]
    if not isinstance(is_asking, bool):
        raise RecordError(
            Rule.WRONG_TYPE, f"is_asking must be true or false, got {_type(is_asking)}"
        )
    if response is None:
        raise _NoAnswer(EvalRule.NULL_REPLY, "MedRAG's response is null: no reply text")
    if not isinstance(response, str):
        raise RecordError(Rule.WRONG_TYPE, f"response must be a string, got {_type(response)}")
    return _reply_text(response, "response"), ASK if is_asking else TELL


def _records_prediction(entry: Any, item: EvalItem, system: str) -> Prediction:
    _, retrievals, final, probabilities = entry
    if not isinstance(retrievals, list | tuple):
        raise RecordError(
            Rule.WRONG_TYPE, f"the retrieval actions must be a list, got {_type(retrievals)}"
        )
    if not isinstance(probabilities, list | tuple):
        raise RecordError(
            Rule.WRONG_TYPE, f"the token probabilities must be a list, got {_type(probabilities)}"
        )
    if final is None:
        raise _NoAnswer(
            EvalRule.NO_FINAL_ACTION,
            "the agent ended without a final AskAction or TellAction (its tool calls failed)",
        )
    action_class = final.get(CLASS_KEY) if isinstance(final, dict) else None
    if action_class not in ("AskAction", "TellAction"):
        raise RecordError(
            Rule.WRONG_TYPE,
            "the final action must be an AskAction or a TellAction, got "
            + (shown_name(action_class) if action_class else _type(final)),
        )
    text = final.get("text")
    if not isinstance(text, str):
        raise RecordError(
            Rule.WRONG_TYPE, f"the final action's text must be a string, got {_type(text)}"
        )
    return Prediction(
        system=system,
        item_id=item.item_id,
        text=_reply_text(text, "the final action's text"),
        action=ASK if action_class == "AskAction" else TELL,
        action_source="tool",
        entities=_entities(final) if action_class == "AskAction" else None,
        extra={"retrievals": len(retrievals), "probabilities": len(probabilities)},
    )


def _entities(action: dict[str, Any]) -> dict[str, list[str]]:
    entities: dict[str, list[str]] = {}
    for name in ENTITY_FIELDS:
        values = action.get(name)
        if values is None:  # MedArk's lists are optional (default empty)
            values = []
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            raise RecordError(
                Rule.WRONG_TYPE, f"AskAction.{name} must be a list of strings, got {_type(values)}"
            )
        entities[name] = list(values)
    return entities


def _reply_text(text: str, what: str) -> str:
    if is_blank(text):
        raise _NoAnswer(EvalRule.EMPTY_REPLY, f"{what} is empty: the system gave no reply")
    if len(text) > MAX_REPLY_CHARS:
        raise RecordError(
            Rule.TEXT_TOO_LONG,
            f"{what} has {len(text)} characters, over the limit of {MAX_REPLY_CHARS} "
            "(importers.MAX_REPLY_CHARS); a reply that long is a generation loop",
        )
    return text


def _type(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return "null" if value is None else type(value).__name__
