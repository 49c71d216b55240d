"""Evaluation tables: items, predictions and per-item scores as warehouse rows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import polars as pl

from ark_assets.lib.evaluation.items import EvalItem, Prediction
from ark_assets.lib.ingest.dialogues import Rejection
from ark_assets.lib.ingest.tables import QUARANTINED_RECORDS
from ark_assets.lib.synthesis.models import Turn
from ark_assets.lib.tables import MEDARK_KEY, Column, frame

_SET = Column("test_set", pl.Utf8, "Test set: a published file's name (zh_med_ask …) or heldout.")
_ITEM = Column("item_id", pl.Utf8, "Digest of (history, patient message, reference).")
_SYSTEM = Column("system", pl.Utf8, "Who answered: our base model or adapter, or a file's system.")

EVAL_ITEMS = (
    _SET,
    _ITEM,
    Column("source_file", pl.Utf8, "The eval-inbox file, or deidentified_dialogues."),
    Column("language", pl.Utf8, "zh or en."),
    Column("instruction", pl.Utf8, "The item's instruction (published files)."),
    Column("history_json", pl.Utf8, "Turns before the item: [{patient, doctor}]."),
    Column("patient_message", pl.Utf8, "The patient message to answer."),
    Column("reference", pl.Utf8, "The real doctor reply."),
    Column("reference_action", pl.Utf8, "ask or tell: the set's name, else the detector."),
    MEDARK_KEY,
    Column("conversation_id", pl.Utf8, "Ours, for held-out items (AUV looks up later turns)."),
)

PREDICTIONS = (
    _SET,
    _SYSTEM,
    _ITEM,
    Column("text", pl.Utf8, "The reply to the patient; null when the system gave none."),
    Column("action", pl.Utf8, "ask or tell, when known."),
    Column("action_source", pl.Utf8, "tool, is_asking, detector or judge."),
    Column("entities_json", pl.Utf8, "The 7 entity lists the system gave, when it gave them."),
    Column("failure", pl.Utf8, "Why there is no answer."),
    Column("extra_json", pl.Utf8, "Backend facts: retrievals, tokens, parse forms …"),
)


def items_frame(items: Iterable[EvalItem], source_file: str) -> pl.DataFrame:
    rows = [
        {
            "test_set": i.test_set,
            "item_id": i.item_id,
            "source_file": source_file,
            "language": i.language,
            "instruction": i.instruction,
            "history_json": json.dumps([t.model_dump() for t in i.history], ensure_ascii=False),
            "patient_message": i.patient_message,
            "reference": i.reference,
            "reference_action": i.reference_action,
            "medark_key": i.medark_key,
            "conversation_id": i.conversation_id,
        }
        for i in items
    ]
    return frame(rows, EVAL_ITEMS)


def item_of(row: Mapping[str, Any]) -> EvalItem:
    return EvalItem(
        item_id=row["item_id"],
        test_set=row["test_set"],
        language=row["language"],
        history=tuple(Turn.model_validate(t) for t in json.loads(row["history_json"])),
        patient_message=row["patient_message"],
        reference=row["reference"],
        reference_action=row["reference_action"],
        medark_key=row["medark_key"],
        instruction=row["instruction"] or "",
        conversation_id=row["conversation_id"] or "",
    )


def predictions_frame(
    predictions: Iterable[tuple[str, Prediction]],
) -> pl.DataFrame:
    """Rows of ``(test_set, prediction)`` pairs."""
    rows = [
        {
            "test_set": test_set,
            "system": p.system,
            "item_id": p.item_id,
            "text": p.text,
            "action": p.action,
            "action_source": p.action_source,
            "entities_json": json.dumps(p.entities, ensure_ascii=False) if p.entities else None,
            "failure": p.failure,
            "extra_json": json.dumps(p.extra, ensure_ascii=False, sort_keys=True),
        }
        for test_set, p in predictions
    ]
    return frame(rows, PREDICTIONS)


def prediction_of(row: Mapping[str, Any]) -> Prediction:
    return Prediction(
        system=row["system"],
        item_id=row["item_id"],
        text=row["text"],
        action=row["action"],
        action_source=row["action_source"],
        entities=json.loads(row["entities_json"]) if row["entities_json"] else None,
        failure=row["failure"],
        extra=json.loads(row["extra_json"] or "{}"),
    )


# The eval_files partition an imported row belongs to (the file's key: name + sha256 prefix).
EVAL_FILE = Column("eval_file", pl.Utf8, "eval_files partition: the imported file's key.")
EVAL_QUARANTINE = (EVAL_FILE, *(c for c in QUARANTINED_RECORDS if c.name != "batch"))
FILE_ITEMS = (EVAL_FILE, *EVAL_ITEMS)
FILE_PREDICTIONS = (EVAL_FILE, *PREDICTIONS)


class Imported(Protocol):
    items: list[EvalItem]
    predictions: list[Prediction]
    rejections: list[Rejection]


@dataclass(frozen=True)
class ImportedFrames:
    items: pl.DataFrame
    quarantined: pl.DataFrame
    predictions: pl.DataFrame
    rule_counts: dict[str, int]


def imported_frames(
    result: Imported, key: str, name: str, digest: str, now: datetime
) -> ImportedFrames:
    """The warehouse rows of one imported eval file (partition ``key``); free-text replies get
    their ask/tell from the question detector."""
    from ark_assets.lib.evaluation.predict import with_detected_action

    by_id = {item.item_id: item for item in result.items}
    predictions = [
        (by_id[p.item_id].test_set, with_detected_action(p, by_id[p.item_id].language))
        for p in result.predictions
        if p.item_id in by_id
    ]
    tag = pl.lit(key).alias("eval_file")
    return ImportedFrames(
        items=items_frame(result.items, name).select(tag, *(c.name for c in EVAL_ITEMS)),
        quarantined=quarantine_frame(key, name, digest, result.rejections, now),
        predictions=predictions_frame(predictions).select(tag, *(c.name for c in PREDICTIONS)),
        rule_counts=dict(sorted(Counter(r.rule for r in result.rejections).items())),
    )


def quarantine_frame(
    key: str, name: str, digest: str, rejections: Sequence[Rejection], now: datetime
) -> pl.DataFrame:
    rows = [
        {
            "eval_file": key,
            "source_file": name,
            "file_sha256": digest,
            "record_index": r.record_index,
            "rule": r.rule,
            "message": r.message,
            "excerpt": r.excerpt,
            "quarantined_at": now,
        }
        for r in rejections
    ]
    return frame(rows, EVAL_QUARANTINE)
