"""The Ark loop: rounds, stop reasons, the ask/tell hint, failures and resuming from the cache."""

import json
from pathlib import Path
from typing import Any

import pytest

from ark_assets.lib.knowledge.retrieval import Hit
from ark_assets.lib.synthesis import prompts
from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.cache import TeacherCache
from ark_assets.lib.synthesis.loop import ArkLoop, LoopSettings, Outcome
from ark_assets.lib.synthesis.models import (
    DEDUCIBLE,
    NO_NEW_QUERY,
    STOP_REASONS,
    TOO_MANY_RETRIEVALS,
    Prefix,
)
from ark_assets.lib.synthesis.teacher import Completion, RetryPolicy, Teacher, TeacherRequest
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets_tests.lib.synthesis.conftest import ScriptedBackend, sample_prefixes


def _by_output(answers: dict[str, Any]):
    """A script answering each output type with a fixed object (or a function of the call)."""

    def answer(request: TeacherRequest[Any], n: int) -> str:
        value = answers[request.output.__name__]
        return json.dumps(value(request) if callable(value) else value)

    return answer


def _plain(check: bool = False, queries: Any = ("头痛怎么办",)) -> dict[str, Any]:
    return {
        "RetrievalRequest": {"reasoning": "look it up", "queries": list(queries)},
        "RefinedResult": {"refined_result": "Rest and drink water."},
        "ReasoningCheck": {"reasoning": "enough?", "deducible": check},
        "AskCheck": {"reasoning": "advice", "is_asking": False},
        "Response": {"reasoning": "advise", "is_asking": False, "entities": {}, "text": "rest"},
    }


def _fresh_query(request: TeacherRequest[Any]) -> dict[str, Any]:
    """A request for a query never asked before: the loop can only stop on the round limit."""
    return {"reasoning": "more", "queries": [f"头痛第{len(request.context['asked'])}问"]}


def _prefix() -> Prefix:
    return sample_prefixes("zh", 1)[0]


def _run(
    backend: Any,
    kb: Any,
    items: list[Prefix],
    settings: LoopSettings | None = None,
    **teacher: Any,
) -> Outcome:
    ark_teacher = Teacher(backend, sleep=lambda s: None, **teacher)
    loop = ArkLoop(ark_teacher, kb, "test-kb", settings or LoopSettings())
    return loop.run(items)


def test_rules_teacher_end_to_end_on_sample_dialogues(kb: MemoryRetriever) -> None:
    items = sample_prefixes("zh", 40) + sample_prefixes("en", 20)
    outcome = _run(RulesBackend(), kb, items)
    assert not outcome.failures
    assert [(p.conversation_id, p.turn_index) for p in outcome.paths] == [
        (i.conversation_id, i.turn_index) for i in items
    ]
    assert {p.stop_reason for p in outcome.paths} == set(STOP_REASONS)
    for path in outcome.paths:
        assert len(path.rounds) <= 2 and all(len(r.request.queries) <= 2 for r in path.rounds)
        assert path.response.is_asking == path.ask_check.is_asking == path.detector_is_asking
        assert path.response.text == path.doctor_reply
        assert path.teacher.backend == "rules" and "no language model" in path.teacher.note
        assert path.prompt_versions == prompts.versions(path.language)
        for result in (q for r in path.rounds for q in r.results):
            assert all(sum(ch in result.query for ch in h.question) >= 3 for h in result.hits)
            assert (result.refined is None) == (not result.hits)
    asking = [p for p in outcome.paths if p.is_asking]
    assert asking and all(p.response.entities.count() > 0 for p in asking)


def test_rules_teacher_is_deterministic(kb: MemoryRetriever) -> None:
    items = sample_prefixes("zh", 5)
    first, second = _run(RulesBackend(), kb, items), _run(RulesBackend(), kb, items)
    assert [p.model_dump() for p in first.paths] == [p.model_dump() for p in second.paths]


@pytest.mark.parametrize(
    ("answers", "stop", "rounds"),
    [
        (_plain(check=True), DEDUCIBLE, 1),
        (_plain(check=False), NO_NEW_QUERY, 1),  # round 2 repeats the query: nothing new
        (_plain(queries=[]), NO_NEW_QUERY, 0),
        ({**_plain(), "RetrievalRequest": lambda r: _fresh_query(r)}, TOO_MANY_RETRIEVALS, 2),
    ],
)
def test_stop_reasons(answers: dict[str, Any], stop: str, rounds: int, kb: MemoryRetriever) -> None:
    (path,) = _run(ScriptedBackend(_by_output(answers)), kb, [_prefix()]).paths
    assert (path.stop_reason, len(path.rounds)) == (stop, rounds)


def _asks_once_repaired(request: TeacherRequest[Any]) -> dict[str, Any]:
    """A teacher that asks for nothing, unless it is being repaired (its answer was refused)."""
    repaired = any(m["role"] == "assistant" for m in request.messages)
    return {"reasoning": "look it up", "queries": ["头痛怎么办"] if repaired else []}


def test_min_rounds_1_gives_a_path_whose_teacher_asks_for_nothing_one_round(
    kb: MemoryRetriever,
) -> None:
    answers = {**_plain(), "RetrievalRequest": _asks_once_repaired}
    backend = ScriptedBackend(_by_output(answers))
    (path,) = _run(backend, kb, [_prefix()], LoopSettings(min_rounds=1)).paths
    assert [r.request.queries for r in path.rounds] == [["头痛怎么办"]]
    assert path.stop_reason == NO_NEW_QUERY  # round 2 is optional: asking nothing ends it
    first, repaired, second = [r for r in backend.requests if r.stage == "request"]
    assert "at least one new question" in repaired.messages[-1]["content"]
    assert first.context["query_required"] and "query_required" not in second.context

    (default,) = _run(ScriptedBackend(_by_output(answers)), kb, [_prefix()]).paths
    assert (default.rounds, default.stop_reason) == ([], NO_NEW_QUERY)  # min_rounds 0: ours


def test_min_rounds_1_fails_a_prefix_whose_teacher_never_asks(kb: MemoryRetriever) -> None:
    backend = ScriptedBackend(_by_output(_plain(queries=[])))
    outcome = _run(
        backend, kb, [_prefix()], LoopSettings(min_rounds=1), retry=RetryPolicy(max_attempts=2)
    )
    (failure,) = outcome.failures
    assert not outcome.paths
    assert (failure.stage, failure.error_type, failure.attempts) == ("request", "InvalidOutput", 2)


def test_min_rounds_cannot_exceed_max_rounds() -> None:
    with pytest.raises(ValueError, match="min_rounds must be between 0 and max_rounds"):
        LoopSettings(min_rounds=3)


def test_the_hint_agrees_with_the_detected_action(kb: MemoryRetriever) -> None:
    answers = {**_plain(check=True), "AskCheck": {"reasoning": "asks", "is_asking": True}}
    answers["Response"] = {**answers["Response"], "is_asking": True}
    backend = ScriptedBackend(_by_output(answers))
    (path,) = _run(backend, kb, [_prefix()]).paths
    (respond,) = [r for r in backend.requests if r.stage == "respond"]
    hints = prompts.stage_template("respond", "zh").fields
    assert hints["hint_ask"] in respond.messages[1]["content"]
    assert hints["hint_tell"] not in respond.messages[1]["content"]
    assert path.is_asking and path.ask_check.is_asking


def test_a_response_contradicting_the_label_is_retried_then_recorded(kb: MemoryRetriever) -> None:
    answers = {**_plain(check=True), "AskCheck": {"reasoning": "asks", "is_asking": True}}
    backend = ScriptedBackend(_by_output(answers))  # Response keeps is_asking false
    outcome = _run(backend, kb, [_prefix()], retry=RetryPolicy(max_attempts=2))
    (failure,) = outcome.failures
    assert not outcome.paths
    assert (failure.stage, failure.error_type, failure.attempts) == ("respond", "InvalidOutput", 2)
    assert "is_asking must be true" in failure.error
    assert len(failure.partial["rounds"]) == 1  # the retrieval done before is kept


class _Unrelated:
    def search(self, query: str, k: int = 2) -> list[Hit]:
        return [Hit("d1", "xyz", "answer", None, 1.0)]


class _Broken:
    def search(self, query: str, k: int = 2) -> list[Hit]:
        raise ConnectionError("chroma server unreachable")


def test_hits_sharing_too_few_characters_are_dropped_and_not_refined() -> None:
    backend = ScriptedBackend(_by_output(_plain(check=True)))
    (path,) = _run(backend, _Unrelated(), [_prefix()]).paths
    (result,) = path.rounds[0].results
    assert result.hits == [] and result.refined is None
    assert "refine" not in {r.stage for r in backend.requests}


def test_a_knowledge_base_error_fails_the_prefix_not_the_batch(kb: MemoryRetriever) -> None:
    backend = ScriptedBackend(_by_output(_plain(check=True)))
    items = sample_prefixes("zh", 1)[:2]
    outcome = _run(backend, _Broken(), items)
    assert [f.stage for f in outcome.failures] == ["retrieval", "retrieval"]
    assert "unreachable" in outcome.failures[0].error


class _Crash(BaseException):
    """Stands for the process dying (OOM kill, node loss): nothing catches it."""


class _CrashingRules(RulesBackend):
    def __init__(self, after: int) -> None:
        self.left = after

    def complete(self, request: TeacherRequest[Any]) -> Completion:
        if self.left == 0:
            raise _Crash
        self.left -= 1
        return super().complete(request)


def test_a_crashed_run_resumes_from_the_cache(kb: MemoryRetriever, tmp_path: Path) -> None:
    items = sample_prefixes("zh", 4)
    reference = Teacher(RulesBackend(), TeacherCache(tmp_path / "reference.sqlite"))
    ArkLoop(reference, kb, "kb").run(items)
    total = reference.stats.totals().calls  # distinct requests: repeats are cache hits

    cache = TeacherCache(tmp_path / "teacher.sqlite")
    with pytest.raises(_Crash):
        ArkLoop(Teacher(_CrashingRules(after=25), cache), kb, "kb").run(items)
    resumed = Teacher(RulesBackend(), cache)
    outcome = ArkLoop(resumed, kb, "kb").run(items)
    assert resumed.stats.totals().calls == total - 25
    assert resumed.stats.totals().cached >= 25
    assert len(outcome.paths) == len(items)

    warm = Teacher(RulesBackend(), cache)
    ArkLoop(warm, kb, "kb").run(items)
    assert warm.stats.totals().calls == 0
    assert warm.stats.totals().cached == reference.stats.totals().cached + total
    cache.close()
