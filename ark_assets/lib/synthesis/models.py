"""The contract of the synthesis stage: what the teacher returns and what a path record holds.

The teacher outputs (``RetrievalRequest``, ``RefinedResult``, ``ReasoningCheck``, ``AskCheck``,
``Response``, ``Entities``) are validated exactly as returned by any backend; ``ArkPath`` is the
record the SFT rendering stage reads back (``lib.synthesis.tables.path_from_row``). Field names
follow
MedArk where it has one (``refined_result``, ``deducible``, ``is_asking``, ``medcine``) so paths
stay comparable with MedArk's pickles.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RECORD_VERSION = 1

DEDUCIBLE: Final = "deducible"
TOO_MANY_RETRIEVALS: Final = "too many retrievals"
NO_NEW_QUERY: Final = "no new query request"
STOP_REASONS = (DEDUCIBLE, TOO_MANY_RETRIEVALS, NO_NEW_QUERY)
StopReason = Literal["deducible", "too many retrievals", "no new query request"]

# MedArk: at most two retrieval rounds per prefix and at most two queries per request.
MAX_ROUNDS = 2
MAX_QUERIES = 2

ENTITY_FIELDS = (
    "disease",
    "symptom",
    "medcine",  # sic: MedArk's field name, kept so its renderers and metrics read our records
    "surgery",
    "body_part",
    "medical_check",
    "concept",
)

Text = Annotated[str, Field(min_length=1)]


def _clean_list(values: Any) -> Any:
    """Strip, drop empty and repeated strings, keep the first-seen order (before validation,
    so a repeated query does not count against the limit; anything else is left to fail)."""
    if values is None:  # models often write null for "nothing"
        return []
    if not isinstance(values, list):
        return values
    kept: list[Any] = []
    for value in values:
        value = value.strip() if isinstance(value, str) else value
        if value != "" and value not in kept:
            kept.append(value)
    return kept


class TeacherOutput(BaseModel):
    """Base of every structured teacher answer: unknown keys are ignored, text is stripped."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class RetrievalRequest(TeacherOutput):
    """A request to query the medical knowledge base."""

    reasoning: Text = Field(
        description="How the dialogue so far and earlier results lead to these queries; concise."
    )
    queries: list[str] = Field(
        max_length=MAX_QUERIES,
        description="At most two new questions for the knowledge base; empty when none is needed.",
    )

    @field_validator("queries", mode="before")
    @classmethod
    def _distinct(cls, queries: Any) -> Any:
        return _clean_list(queries)


class RefinedResult(TeacherOutput):
    """What the retrieved documents say that answers the query."""

    refined_result: Text = Field(
        description="Two or three sentences from the retrieved documents relevant to the query."
    )


class ReasoningCheck(TeacherOutput):
    """Whether the real doctor reply can now be deduced from the dialogue and the results."""

    reasoning: Text = Field(description="Why the doctor reply can or cannot be deduced; concise.")
    deducible: bool = Field(description="True when the information suffices for the reply.")


class AskCheck(TeacherOutput):
    """Whether the real doctor reply asks the patient for more information."""

    reasoning: Text = Field(description="What in the reply makes it a question or an answer.")
    is_asking: bool = Field(description="True when the reply asks the patient something.")


class Entities(TeacherOutput):
    """The seven kinds of things a doctor asks about (MedArk's entity lists)."""

    disease: list[str] = Field(default_factory=list, description="Diseases asked about.")
    symptom: list[str] = Field(default_factory=list, description="Symptoms asked about.")
    medcine: list[str] = Field(default_factory=list, description="Medicines asked about.")
    surgery: list[str] = Field(default_factory=list, description="Operations asked about.")
    body_part: list[str] = Field(default_factory=list, description="Body parts asked about.")
    medical_check: list[str] = Field(
        default_factory=list, description="Examinations, results or conclusions asked about."
    )
    concept: list[str] = Field(
        default_factory=list,
        description="Other consultation concepts: age, sex, onset, duration, diet, history…",
    )

    @field_validator(*ENTITY_FIELDS, mode="before")
    @classmethod
    def _distinct(cls, values: Any) -> Any:
        return _clean_list(values)

    def as_lists(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name)) for name in ENTITY_FIELDS}

    def count(self) -> int:
        return sum(len(values) for values in self.as_lists().values())


class Response(TeacherOutput):
    """The final action: the doctor's real reply, explained."""

    reasoning: Text = Field(description="Why the doctor asks or tells at this point; concise.")
    is_asking: bool = Field(description="True for an ask (more information needed), else tell.")
    entities: Entities = Field(
        default_factory=Entities, description="For an ask: what the doctor asks about."
    )
    text: Text = Field(description="The doctor's reply to the patient.")


class Turn(BaseModel):
    patient: str
    doctor: str


class Prefix(BaseModel):
    """A dialogue prefix that ends in a real doctor reply: the unit the teacher explains."""

    batch: str
    conversation_id: str
    medark_key: str
    turn_index: int = Field(
        description="0-based index of the turn whose doctor reply is explained."
    )
    language: str
    history: list[Turn] = Field(description="Complete turns before this one.")
    patient_message: str = Field(description="The patient's message the doctor answers.")
    doctor_reply: str = Field(description="The real doctor reply (the training target).")


class HitRecord(BaseModel):
    """A knowledge-base document kept for a query (it passed the shared-character filter)."""

    doc_id: str
    question: str
    answer: str
    source: str | None
    score: float


class QueryResult(BaseModel):
    query: str
    hits: list[HitRecord]
    # None when no document passed the filter: there was nothing to refine, no call was made.
    refined: RefinedResult | None


class RetrievalRound(BaseModel):
    request: RetrievalRequest
    results: list[QueryResult]
    check: ReasoningCheck


class TeacherIdentity(BaseModel):
    backend: str
    model: str
    note: str = Field(description="What kind of teacher this is and what quality to expect.")


class ArkPath(Prefix):
    """The hidden path behind one doctor reply: retrieval rounds, stop reason, ask or tell."""

    record_version: int = RECORD_VERSION
    rounds: list[RetrievalRound]
    stop_reason: StopReason
    ask_check: AskCheck
    detector_is_asking: bool = Field(
        description="The rule-based question detector's verdict on the reply, for auditing."
    )
    response: Response
    teacher: TeacherIdentity
    prompt_versions: dict[str, str]
    kb: str | None = Field(description="Identity of the knowledge base the queries ran against.")

    @property
    def is_asking(self) -> bool:
        return self.response.is_asking


class StageFailure(BaseModel):
    """A prefix (or an entity request) the teacher could not complete: kept, never dropped."""

    batch: str
    conversation_id: str
    medark_key: str
    turn_index: int
    language: str
    stage: str
    error_type: str
    error: str
    attempts: int
    teacher: TeacherIdentity
    partial: dict[str, Any] = Field(default_factory=dict, description="The path so far.")


class EntityRecord(BaseModel):
    """MedArk stage 2: the entities an asking reply asks about, regenerated on their own."""

    batch: str
    conversation_id: str
    medark_key: str
    turn_index: int
    language: str
    doctor_reply: str
    entities: Entities
    dropped: list[str] = Field(
        default_factory=list, description="Returned entities absent from the reply (removed)."
    )
    teacher: TeacherIdentity
    prompt_version: str
