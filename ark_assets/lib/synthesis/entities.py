"""MedArk stage 2: the seven entity lists of every asking doctor reply, regenerated on their own.

The first pass's ``Response.entities`` come as a by-product of explaining the reply; MedArk
re-extracts them from the question part of the reply with a dedicated prompt, and the SFT
``AskAction`` uses these. Each entity must occur in the reply: entities the teacher invents
(absent from the reply) are removed and listed in ``dropped``, and an answer listing entities of
which none occurs is re-asked. An answer listing none is a valid record with empty lists: MedArk's
seven lists are optional, and an ask such as "多久了？" ("how long?") names nothing they hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ark_assets.lib.synthesis import prompts, questions
from ark_assets.lib.synthesis.jsontext import InvalidOutput
from ark_assets.lib.synthesis.loop import parallel_map
from ark_assets.lib.synthesis.models import ENTITY_FIELDS, Entities, EntityRecord, StageFailure
from ark_assets.lib.synthesis.teacher import Teacher, TeacherFailure, TeacherRequest

STAGE = "entities"
_KEYS = ("batch", "conversation_id", "medark_key", "turn_index", "language")


@dataclass
class EntityOutcome:
    records: list[EntityRecord] = field(default_factory=list)
    failures: list[StageFailure] = field(default_factory=list)


def _occurs(entity: str, reply: str) -> bool:
    return entity.lower() in reply.lower()


def split_found(entities: Entities, reply: str) -> tuple[Entities, list[str]]:
    """The entities that occur in ``reply``, and those that do not."""
    kept: dict[str, list[str]] = {}
    dropped: list[str] = []
    for name, values in entities.as_lists().items():
        kept[name] = [v for v in values if _occurs(v, reply)]
        dropped += [v for v in values if not _occurs(v, reply)]
    return Entities.model_validate(kept), dropped


def regenerate(teacher: Teacher, paths: Sequence[Mapping[str, Any]]) -> EntityOutcome:
    """Entity records for the asking rows of ``ark_paths`` (other rows are skipped)."""
    asking = [row for row in paths if row["is_asking"]]
    outcome = EntityOutcome()
    for row, result in zip(
        asking, parallel_map(lambda r: _one(teacher, r), asking, teacher.concurrency), strict=True
    ):
        if isinstance(result, TeacherFailure):
            outcome.failures.append(
                StageFailure(
                    **{k: row[k] for k in _KEYS},
                    stage=result.stage,
                    error_type=result.error_type,
                    error=result.message,
                    attempts=result.attempts,
                    teacher=teacher.identity,
                )
            )
        else:
            outcome.records.append(result)
    return outcome


def _one(teacher: Teacher, row: Mapping[str, Any]) -> EntityRecord | TeacherFailure:
    reply, language = str(row["doctor_reply"]), str(row["language"])
    try:
        kept, dropped = extract(teacher, reply, language)
    except TeacherFailure as failure:
        return failure
    return EntityRecord(
        **{k: row[k] for k in _KEYS},
        doctor_reply=reply,
        entities=kept,
        dropped=dropped,
        teacher=teacher.identity,
        prompt_version=prompts.stage_template(STAGE, language).identity,
    )


def extract(teacher: Teacher, reply: str, language: str) -> tuple[Entities, list[str]]:
    """The entity stage on one reply: the seven lists it asks about (only entities that occur in
    the reply are kept; the others are returned as dropped; all seven may be empty). Raises
    ``TeacherFailure``."""
    asked = questions.detect(reply, language).questions
    messages = prompts.messages(
        STAGE,
        language,
        Entities,
        reply=reply,
        questions="\n".join(asked) or prompts.labels(language).fields["none"],
    )

    def grounded(entities: Entities) -> None:
        listed = [v for name in ENTITY_FIELDS for v in getattr(entities, name)]
        if listed and not any(_occurs(v, reply) for v in listed):
            raise InvalidOutput("no listed entity occurs in the doctor's reply")

    request = TeacherRequest(STAGE, language, Entities, messages, {"reply": reply})
    answer, _ = teacher.ask(request, grounded)
    return split_found(answer, reply)
