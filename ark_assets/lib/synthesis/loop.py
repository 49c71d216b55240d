"""The Ark loop (MedArk stage 1): the hidden path behind each real doctor reply.

For every prefix of a dialogue that ends in a doctor reply:
1. up to ``MAX_ROUNDS`` rounds: the teacher asks a ``RetrievalRequest`` (≤ 2 new queries) from
   the dialogue and earlier results; each query searches the knowledge base (k=2, hits must
   share ≥ 3 characters with the query); the teacher condenses each query's hits into a
   ``RefinedResult``; a ``ReasoningCheck`` decides whether the real reply is now deducible.
   The loop stops on ``deducible``, ``no new query request`` (no new query asked) or
   ``too many retrievals`` (rounds exhausted), and records which. A first request that asks for
   nothing therefore ends with no round at all; ``LoopSettings.min_rounds`` restores MedArk's
   "every path has a retrieval round" (its data never holds a zero-round path).
2. the teacher labels the real reply ask or tell (``AskCheck``), then explains it as a
   ``Response`` with a hint that agrees with that label (MedArk's hint is inverted: it tells the
   teacher an asking reply "should not be a question"). A response whose ``is_asking``
   disagrees with the label is rejected and re-asked.

A prefix the teacher cannot complete becomes a ``StageFailure`` with the path so far; nothing
is dropped. Prefixes run concurrently (the teacher caps in-flight calls).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from ark_assets.lib.knowledge.retrieval import Hit, Retriever, shares_chars
from ark_assets.lib.synthesis import prompts, questions
from ark_assets.lib.synthesis.jsontext import InvalidOutput
from ark_assets.lib.synthesis.models import (
    DEDUCIBLE,
    MAX_QUERIES,
    MAX_ROUNDS,
    NO_NEW_QUERY,
    TOO_MANY_RETRIEVALS,
    ArkPath,
    AskCheck,
    HitRecord,
    Prefix,
    QueryResult,
    ReasoningCheck,
    RefinedResult,
    Response,
    RetrievalRequest,
    RetrievalRound,
    StageFailure,
    StopReason,
    TeacherIdentity,
    TeacherOutput,
    Turn,
)
from ark_assets.lib.synthesis.teacher import Teacher, TeacherFailure, TeacherRequest

T = TypeVar("T", bound=TeacherOutput)
R = TypeVar("R")

RETRIEVAL_STAGE = "retrieval"


@dataclass(frozen=True)
class LoopSettings:
    k: int = 2  # MedArk: similarity_search(k=2)
    min_shared_chars: int = 3  # MedArk: a hit must share ≥ 3 characters with its query
    max_rounds: int = MAX_ROUNDS
    # 0: a request that asks for nothing new ends the loop, even before the first round.
    # n > 0 (MedArk: 1): while fewer than n rounds ran, such a request is invalid output: the
    # teacher is re-asked with the repair message (its retry policy), and a prefix it still
    # answers with no query becomes a recorded failure, never a path without the round.
    min_rounds: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.min_rounds <= self.max_rounds:
            raise ValueError(
                f"min_rounds must be between 0 and max_rounds ({self.max_rounds}), "
                f"got {self.min_rounds}"
            )


@dataclass
class Outcome:
    paths: list[ArkPath] = field(default_factory=list)
    failures: list[StageFailure] = field(default_factory=list)


class PrefixFailed(Exception):
    def __init__(self, stage: str, error_type: str, message: str, attempts: int, partial: dict):
        super().__init__(f"{stage}: {message}")
        self.stage, self.error_type, self.message = stage, error_type, message
        self.attempts, self.partial = attempts, partial


def prefixes(row: Mapping[str, Any]) -> list[Prefix]:
    """Every prefix of a ``tagged_dialogues`` row that ends in a doctor reply."""
    turns = [Turn.model_validate(t) for t in json.loads(row["turns_json"])]
    return [
        Prefix(
            batch=row["batch"],
            conversation_id=row["conversation_id"],
            medark_key=row["medark_key"],
            turn_index=index,
            language=row["language"],
            history=turns[:index],
            patient_message=turn.patient,
            doctor_reply=turn.doctor,
        )
        for index, turn in enumerate(turns)
    ]


class Call(NamedTuple):
    """A stage request before it meets the teacher: rendered messages and the raw context."""

    messages: list[dict[str, str]]
    context: dict[str, Any]


class ArkLoop:
    def __init__(
        self,
        teacher: Teacher,
        retriever: Retriever,
        kb: str | None,
        settings: LoopSettings = LoopSettings(),
    ) -> None:
        self.teacher = teacher
        self.retriever = retriever
        self.kb = kb
        self.settings = settings

    def run(
        self, items: Sequence[Prefix], on_done: Callable[[int, int], None] | None = None
    ) -> Outcome:
        """Paths and failures for ``items``, in input order; ``on_done(done, total)`` as
        prefixes finish."""
        outcome = Outcome()
        results = parallel_map(self._attempt, items, self.teacher.concurrency, on_done)
        for prefix, result in zip(items, results, strict=True):
            if isinstance(result, PrefixFailed):
                outcome.failures.append(failure(prefix, result, self.teacher.identity))
            else:
                outcome.paths.append(result)
        return outcome

    def _attempt(self, prefix: Prefix) -> ArkPath | PrefixFailed:
        try:
            return self.path(prefix)
        except PrefixFailed as failed:
            return failed

    def path(self, prefix: Prefix) -> ArkPath:
        """The full path of one prefix; ``PrefixFailed`` when a stage fails every attempt."""
        rounds: list[RetrievalRound] = []
        stop: StopReason = TOO_MANY_RETRIEVALS
        while len(rounds) < self.settings.max_rounds:
            asked = {q for r in rounds for q in r.request.queries}
            required = len(rounds) < self.settings.min_rounds
            call = _request_call(prefix, rounds, required)
            rule = _asks_new(asked) if required else None
            request = self._ask(prefix, rounds, RetrievalRequest, call, rule)
            queries = [q for q in request.queries if q not in asked][:MAX_QUERIES]
            if not queries:
                stop = NO_NEW_QUERY
                break
            request = request.model_copy(update={"queries": queries})
            found = [self._search(prefix, rounds, query) for query in queries]
            check = self._ask(
                prefix, rounds, ReasoningCheck, _check_call(prefix, rounds, request, found)
            )
            rounds.append(RetrievalRound(request=request, results=found, check=check))
            if check.deducible:
                stop = DEDUCIBLE
                break
        label = self._ask(prefix, rounds, AskCheck, _classify_call(prefix))

        def agrees(response: Response) -> None:
            if response.is_asking != label.is_asking:
                raise InvalidOutput(f"is_asking must be {str(label.is_asking).lower()}")

        call = _respond_call(prefix, rounds, label)
        response = self._ask(prefix, rounds, Response, call, agrees)
        return ArkPath(
            **prefix.model_dump(),
            rounds=rounds,
            stop_reason=stop,
            ask_check=label,
            detector_is_asking=questions.detect(prefix.doctor_reply, prefix.language).is_asking,
            response=response,
            teacher=self.teacher.identity,
            prompt_versions=prompts.versions(prefix.language),
            kb=self.kb,
        )

    def _ask(
        self,
        prefix: Prefix,
        rounds: list[RetrievalRound],
        output: type[T],
        call: Call,
        check: Callable[[T], None] | None = None,
    ) -> T:
        stage = _STAGE_OF[output]
        request = TeacherRequest(stage, prefix.language, output, call.messages, call.context)
        try:
            answer, _ = self.teacher.ask(request, check)
        except TeacherFailure as err:
            raise PrefixFailed(
                err.stage, err.error_type, err.message, err.attempts, _partial(rounds)
            ) from err
        return answer

    def _search(self, prefix: Prefix, rounds: list[RetrievalRound], query: str) -> QueryResult:
        try:
            found = self.retriever.search(query, k=self.settings.k)
        except Exception as err:  # a KB error fails this prefix (recorded); the batch goes on
            raise PrefixFailed(
                RETRIEVAL_STAGE, type(err).__name__, str(err), 1, _partial(rounds)
            ) from err
        hits = kept_hits(query, found, self.settings.min_shared_chars)
        if not hits:  # nothing to condense: no call, the path says so
            return QueryResult(query=query, hits=[], refined=None)
        refined = self._ask(prefix, rounds, RefinedResult, _refine_call(prefix, query, hits))
        return QueryResult(query=query, hits=hits, refined=refined)


def kept_hits(query: str, found: Sequence[Hit], min_shared_chars: int) -> list[HitRecord]:
    """The hits that pass MedArk's filter (≥ ``min_shared_chars`` characters shared with the
    query), as recorded in a path."""
    return [
        HitRecord(
            doc_id=h.doc_id, question=h.question, answer=h.answer, source=h.source, score=h.score
        )
        for h in found
        if shares_chars(query, h, min_shared_chars)
    ]


def refine(teacher: Teacher, prefix: Prefix, query: str, hits: list[HitRecord]) -> RefinedResult:
    """The teacher's condensation of ``hits`` for ``query`` (the refine stage, cached like every
    teacher call); raises ``TeacherFailure`` when it fails every attempt. The agent loop uses it
    so that the results a student sees at inference are made as in its training data."""
    call = _refine_call(prefix, query, hits)
    request = TeacherRequest("refine", prefix.language, RefinedResult, call.messages, call.context)
    answer, _ = teacher.ask(request)
    return answer


_STAGE_OF: dict[type[TeacherOutput], str] = {
    RetrievalRequest: "request",
    RefinedResult: "refine",
    ReasoningCheck: "check",
    AskCheck: "classify",
    Response: "respond",
}


def _asks_new(asked: set[str]) -> Callable[[RetrievalRequest], None]:
    """The rule of a required round: the request asks at least one question not asked yet."""

    def check(request: RetrievalRequest) -> None:
        if all(query in asked for query in request.queries):
            raise InvalidOutput("queries must hold at least one new question")

    return check


def _request_call(prefix: Prefix, rounds: list[RetrievalRound], required: bool) -> Call:
    messages = prompts.messages(
        "request",
        prefix.language,
        RetrievalRequest,
        history=prompts.dialogue(prefix),
        results=prompts.results(rounds, prefix.language),
    )
    context: dict[str, Any] = {
        "patient_messages": _patient_messages(prefix),
        "asked": [q for r in rounds for q in r.request.queries],
    }
    if required:  # its own cache entry: an empty answer cached with min_rounds 0 is not reused
        context["query_required"] = True
    return Call(messages, context)


def _refine_call(prefix: Prefix, query: str, hits: list[HitRecord]) -> Call:
    documents = [{"question": h.question, "answer": h.answer} for h in hits]
    messages = prompts.messages(
        "refine",
        prefix.language,
        RefinedResult,
        query=query,
        documents=prompts.documents(documents, prefix.language),
    )
    return Call(messages, {"query": query, "documents": documents})


def _check_call(
    prefix: Prefix,
    rounds: list[RetrievalRound],
    request: RetrievalRequest,
    found: list[QueryResult],
) -> Call:
    messages = prompts.messages(
        "check",
        prefix.language,
        ReasoningCheck,
        history=prompts.dialogue(prefix),
        reply=prefix.doctor_reply,
        path=prompts.path(rounds, prefix.language, pending=(request, found)),
    )
    retrieved = [
        text
        for result in [*(q for r in rounds for q in r.results), *found]
        for text in [
            *(h.answer for h in result.hits),
            *([result.refined.refined_result] if result.refined else []),
        ]
    ]
    return Call(messages, {"reply": prefix.doctor_reply, "retrieved": retrieved})


def _classify_call(prefix: Prefix) -> Call:
    messages = prompts.messages("classify", prefix.language, AskCheck, reply=prefix.doctor_reply)
    return Call(messages, {"reply": prefix.doctor_reply})


def _respond_call(prefix: Prefix, rounds: list[RetrievalRound], label: AskCheck) -> Call:
    template = prompts.stage_template("respond", prefix.language)
    messages = prompts.messages(
        "respond",
        prefix.language,
        Response,
        history=prompts.dialogue(prefix),
        path=prompts.path(rounds, prefix.language),
        reply=prefix.doctor_reply,
        hint=template.fill("hint_ask" if label.is_asking else "hint_tell"),
    )
    context = {
        "reply": prefix.doctor_reply,
        "is_asking": label.is_asking,
        "queries": [q for r in rounds for q in r.request.queries],
        "patient_messages": _patient_messages(prefix),
    }
    return Call(messages, context)


def _patient_messages(prefix: Prefix) -> list[str]:
    return [*(t.patient for t in prefix.history), prefix.patient_message]


def _partial(rounds: list[RetrievalRound]) -> dict[str, Any]:
    return {"rounds": [r.model_dump() for r in rounds]}


def failure(prefix: Prefix, failed: PrefixFailed, teacher: TeacherIdentity) -> StageFailure:
    return StageFailure(
        batch=prefix.batch,
        conversation_id=prefix.conversation_id,
        medark_key=prefix.medark_key,
        turn_index=prefix.turn_index,
        language=prefix.language,
        stage=failed.stage,
        error_type=failed.error_type,
        error=failed.message,
        attempts=failed.attempts,
        teacher=teacher,
        partial=failed.partial,
    )


def parallel_map(
    fn: Callable[[Any], R],
    items: Iterable[Any],
    workers: int,
    on_done: Callable[[int, int], None] | None = None,
) -> list[R]:
    """``[fn(x) for x in items]`` on ``workers`` threads, in order. An exception that escapes
    ``fn`` (a crash, not a recorded failure) cancels what has not started and propagates;
    everything answered so far is already in the teacher cache, so a re-run resumes.
    ``on_done(done, total)`` is called on the calling thread as items finish (progress)."""
    items = list(items)
    report = on_done or (lambda done, total: None)
    if workers <= 1:
        results = []
        for item in items:
            results.append(fn(item))
            report(len(results), len(items))
        return results
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ark")
    try:
        futures = [executor.submit(fn, item) for item in items]
        for done, future in enumerate(as_completed(futures), 1):
            if (error := future.exception()) is not None:
                raise error
            report(done, len(futures))
        return [f.result() for f in futures]
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
