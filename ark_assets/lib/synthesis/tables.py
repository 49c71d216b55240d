"""Column contracts of the synthesis tables and the record ↔ row conversions.

Nested parts of a record are JSON columns (``*_json``), so one row holds a whole path; a few
flat columns (counts, flags, identities) make the tables queryable and checkable in SQL.
``path_from_row`` is how the SFT rendering stage reads a path back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from ark_assets.lib.synthesis.models import (
    ENTITY_FIELDS,
    ArkPath,
    EntityRecord,
    StageFailure,
    TeacherIdentity,
)
from ark_assets.lib.tables import BATCH, MEDARK_KEY, Column, frame

_CONVERSATION = Column("conversation_id", pl.Utf8, "tagged_dialogues.conversation_id.")
_TURN = Column("turn_index", pl.Int64, "0-based turn whose doctor reply is explained.")
_LANGUAGE = Column("language", pl.Utf8, "zh or en: the language of the prompts used.")
_REPLY = Column("doctor_reply", pl.Utf8, "The real doctor reply.")
_BACKEND = Column("teacher_backend", pl.Utf8, "rules, openai or transformers.")
_MODEL = Column("teacher_model", pl.Utf8, "Model name (or rules version) of the teacher.")
_TEACHER = Column("teacher_json", pl.Utf8, "Teacher identity {backend, model, note}.")

ARK_PATHS = (
    BATCH,
    _CONVERSATION,
    MEDARK_KEY,
    _TURN,
    _LANGUAGE,
    Column("history_json", pl.Utf8, "Complete turns before this one: [{patient, doctor}]."),
    Column("patient_message", pl.Utf8, "The patient message the doctor replies to."),
    _REPLY,
    Column(
        "rounds_json",
        pl.Utf8,
        "Retrieval rounds: [{request {reasoning, queries}, results [{query, hits [{doc_id, "
        "question, answer, source, score}], refined {refined_result} | null}], check "
        "{reasoning, deducible}}].",
    ),
    Column("n_rounds", pl.Int64, "Retrieval rounds made (≤ 2)."),
    Column("max_queries_per_round", pl.Int64, "Most queries in one round (≤ 2)."),
    Column("n_hits", pl.Int64, "Knowledge-base documents kept over all queries."),
    Column("stop_reason", pl.Utf8, "deducible, too many retrievals or no new query request."),
    Column("is_asking", pl.Boolean, "The doctor reply asks (Ask) rather than answers (Tell)."),
    Column("detector_is_asking", pl.Boolean, "The rule-based question detector's verdict."),
    Column("ask_check_json", pl.Utf8, "The teacher's ask/tell label {reasoning, is_asking}."),
    Column(
        "response_json",
        pl.Utf8,
        "The final action {reasoning, is_asking, entities (7 lists), text}.",
    ),
    _BACKEND,
    _MODEL,
    _TEACHER,
    Column("prompt_versions_json", pl.Utf8, "Template identity per stage."),
    Column("kb", pl.Utf8, "Identity of the knowledge base searched."),
    Column("record_version", pl.Int64, "Version of the ArkPath record layout."),
)

ARK_FAILURES = (
    BATCH,
    _CONVERSATION,
    MEDARK_KEY,
    _TURN,
    _LANGUAGE,
    Column(
        "stage",
        pl.Utf8,
        "Stage that failed: request, refine, check, classify, respond, entities or retrieval.",
    ),
    Column("error_type", pl.Utf8, "InvalidOutput, TransientError or the retriever's error."),
    Column("error", pl.Utf8, "The last error, with what was wrong."),
    Column("attempts", pl.Int64, "Attempts made before giving up."),
    _BACKEND,
    _MODEL,
    _TEACHER,
    Column("partial_json", pl.Utf8, "The path completed before the failure."),
)

ARK_ENTITIES = (
    BATCH,
    _CONVERSATION,
    MEDARK_KEY,
    _TURN,
    _LANGUAGE,
    _REPLY,
    *(
        Column(name, pl.List(pl.Utf8), f"MedArk entity list '{name}' of the doctor's question.")
        for name in ENTITY_FIELDS
    ),
    Column("n_entities", pl.Int64, "Entities over the seven lists."),
    Column("dropped_json", pl.Utf8, "Entities the teacher returned that the reply lacks."),
    _BACKEND,
    _MODEL,
    _TEACHER,
    Column("prompt_version", pl.Utf8, "Identity of the entities template."),
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _teacher(teacher: TeacherIdentity) -> dict[str, str]:
    return {
        "teacher_backend": teacher.backend,
        "teacher_model": teacher.model,
        "teacher_json": teacher.model_dump_json(),
    }


def paths_frame(paths: Iterable[ArkPath]) -> pl.DataFrame:
    return frame((_path_row(p) for p in paths), ARK_PATHS)


def _path_row(path: ArkPath) -> dict[str, Any]:
    dumped = path.model_dump(mode="json")
    return {
        **{k: dumped[k] for k in ("batch", "conversation_id", "medark_key", "turn_index")},
        "language": path.language,
        "history_json": _json(dumped["history"]),
        "patient_message": path.patient_message,
        "doctor_reply": path.doctor_reply,
        "rounds_json": _json(dumped["rounds"]),
        "n_rounds": len(path.rounds),
        "max_queries_per_round": max((len(r.request.queries) for r in path.rounds), default=0),
        "n_hits": sum(len(q.hits) for r in path.rounds for q in r.results),
        "stop_reason": path.stop_reason,
        "is_asking": path.is_asking,
        "detector_is_asking": path.detector_is_asking,
        "ask_check_json": _json(dumped["ask_check"]),
        "response_json": _json(dumped["response"]),
        **_teacher(path.teacher),
        "prompt_versions_json": _json(path.prompt_versions),
        "kb": path.kb,
        "record_version": path.record_version,
    }


def path_from_row(row: Mapping[str, Any]) -> ArkPath:
    """The ``ArkPath`` stored in one ``ark_paths`` row."""
    return ArkPath(
        batch=row["batch"],
        conversation_id=row["conversation_id"],
        medark_key=row["medark_key"],
        turn_index=row["turn_index"],
        language=row["language"],
        history=json.loads(row["history_json"]),
        patient_message=row["patient_message"],
        doctor_reply=row["doctor_reply"],
        record_version=row["record_version"],
        rounds=json.loads(row["rounds_json"]),
        stop_reason=row["stop_reason"],
        ask_check=json.loads(row["ask_check_json"]),
        detector_is_asking=row["detector_is_asking"],
        response=json.loads(row["response_json"]),
        teacher=json.loads(row["teacher_json"]),
        prompt_versions=json.loads(row["prompt_versions_json"]),
        kb=row["kb"],
    )


def failures_frame(failures: Iterable[StageFailure]) -> pl.DataFrame:
    rows = (
        {
            **f.model_dump(include={"batch", "conversation_id", "medark_key", "turn_index"}),
            "language": f.language,
            "stage": f.stage,
            "error_type": f.error_type,
            "error": f.error,
            "attempts": f.attempts,
            **_teacher(f.teacher),
            "partial_json": _json(f.partial),
        }
        for f in failures
    )
    return frame(rows, ARK_FAILURES)


def entities_frame(records: Iterable[EntityRecord]) -> pl.DataFrame:
    rows = (
        {
            **r.model_dump(include={"batch", "conversation_id", "medark_key", "turn_index"}),
            "language": r.language,
            "doctor_reply": r.doctor_reply,
            **r.entities.as_lists(),
            "n_entities": r.entities.count(),
            "dropped_json": _json(r.dropped),
            **_teacher(r.teacher),
            "prompt_version": r.prompt_version,
        }
        for r in records
    )
    return frame(rows, ARK_ENTITIES)
