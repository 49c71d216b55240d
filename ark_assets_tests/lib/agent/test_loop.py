"""The batched agent loop with a scripted policy: every path a row can take, and the batching."""

import json
from typing import Any

import pytest

from ark_assets.lib.agent.loop import FAILED, OK, AgentLoop, LoopSettings
from ark_assets.lib.agent.parse import BARE, FENCED, TAGGED, parse_call
from ark_assets.lib.agent.policy import GenerationRequest
from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.teacher import Teacher
from ark_assets.lib.training.render import (
    RetrievalAction,
    call_message,
    dialogue_messages,
    prompt_text,
    tool_response,
)
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets.testing.scripted_policy import ScriptedPolicy, ask, retrieve, tell, tool_call
from ark_assets_tests.lib.synthesis.conftest import sample_prefixes

PREFIXES = sample_prefixes("zh", 2)[:5]


def _loop(script: Any, tokenizer: Any, kb: MemoryRetriever, **settings: Any) -> AgentLoop:
    policy = ScriptedPolicy(script)
    teacher = Teacher(RulesBackend(), max_concurrency=2)
    return AgentLoop(policy, tokenizer, kb, teacher, LoopSettings(**settings))


def _responses(prompt: str) -> int:
    return prompt.count("<tool_response>")


def test_tell_at_once(qwen_tokenizer: Any, kb: MemoryRetriever) -> None:
    loop = _loop(lambda r, n: tell(), qwen_tokenizer, kb)
    runs = loop.run(PREFIXES)
    assert [r.status for r in runs] == [OK] * len(PREFIXES)
    assert {r.final.name for r in runs if r.final} == {"TellAction"}
    assert all(r.retrievals == 0 and len(r.steps) == 1 and r.final_logprobs for r in runs)
    # the prompt is exactly the training format plus the generation prompt
    first = loop.policy.requests[0].prompt  # type: ignore[attr-defined]
    p = PREFIXES[0]
    expected = prompt_text(
        dialogue_messages(p.language, p.history, p.patient_message), qwen_tokenizer
    )
    assert first == expected and first.endswith("<|im_start|>assistant\n")


def test_retrieval_then_ask_appends_the_tool_response_sft_trains_on(
    qwen_tokenizer: Any, kb: MemoryRetriever
) -> None:
    def script(request: GenerationRequest, _: int) -> str:
        return ask(symptom=["发热"]) if _responses(request.prompt) else retrieve("发烧三天怎么办")

    loop = _loop(script, qwen_tokenizer, kb)
    runs = loop.run(PREFIXES[:2])
    for run in runs:
        assert run.status == OK and run.final and run.final.name == "AskAction"
        assert run.retrievals == 1
        retrieval, final = run.steps
        assert retrieval.call == "RetrievalAction" and retrieval.queries == ["发烧三天怎么办"]
        assert len(retrieval.hits) == 1 and len(retrieval.refined) == 1
        assert final.call == "AskAction" and final.arguments["symptom"] == ["发热"]  # type: ignore[index]
        tool_turn = run.messages[3]
        assert tool_turn["role"] == "tool"
        assert [r["query"] for r in json.loads(tool_turn["content"])] == ["发烧三天怎么办"]
    # both rows advanced together: one generate call per step, two rows each
    assert loop.policy.batches == [2, 2]  # type: ignore[attr-defined]


def test_the_retrieval_cap_forces_a_constrained_final_action(
    qwen_tokenizer: Any, kb: MemoryRetriever
) -> None:
    def script(request: GenerationRequest, _: int) -> str:
        if request.constraint is not None:  # what a constrained decoder can produce
            schema = json.dumps(request.constraint)
            assert "RetrievalAction" not in schema and "TellAction" in schema
            return tell(form="constrained")
        return retrieve(f"问题{_responses(request.prompt)}")

    loop = _loop(script, qwen_tokenizer, kb, max_retrievals=3)
    (run,) = loop.run(PREFIXES[:1])
    assert run.status == OK and run.forced_final and run.retrievals == 3
    assert [s.call for s in run.steps] == ["RetrievalAction"] * 3 + ["TellAction"]
    assert run.steps[-1].constrained and run.steps[-1].form == TAGGED
    assert loop.policy.requests[-1].prompt.endswith("<tool_call>\n")  # type: ignore[attr-defined]


def test_final_from_a_given_chat_is_one_constrained_final_action(
    qwen_tokenizer: Any, kb: MemoryRetriever
) -> None:
    """DPO's rejections: the chat (with retrieval turns in it) is given; the next call may only
    be Ask or Tell, from exactly that chat, and a retrieval is never run."""

    def script(request: GenerationRequest, _: int) -> str:
        assert request.constraint is not None
        assert "RetrievalAction" not in json.dumps(request.constraint)
        return ask(form="constrained", symptom=["发热"])

    prefix = PREFIXES[0]
    chat = dialogue_messages(prefix.language, prefix.history, prefix.patient_message)
    chat += [
        call_message(RetrievalAction(reasoning="查一下。", queries=["发烧"])),
        tool_response(prefix.language, [("发烧", "发烧可先物理降温。")]),
    ]
    loop = _loop(script, qwen_tokenizer, kb)
    (run,) = loop.final_from([prefix], [chat])
    assert run.status == OK and run.final and run.final.name == "AskAction" and run.forced_final
    assert run.retrievals == 0 and len(run.steps) == 1
    (request,) = loop.policy.requests  # type: ignore[attr-defined]
    assert request.prompt == prompt_text(chat, qwen_tokenizer) + "<tool_call>\n"
    assert len(chat) == 4  # the caller's chat is not modified


def test_malformed_output_is_retried_sampled_then_fails_with_the_reason(
    qwen_tokenizer: Any, kb: MemoryRetriever
) -> None:
    loop = _loop(lambda r, n: "I think you should rest.", qwen_tokenizer, kb, max_retries=2)
    (run,) = loop.run(PREFIXES[:1])
    assert run.status == FAILED and run.final is None
    assert run.failure and "no_call" in run.failure and "3 tries" in run.failure
    temperatures = [r.decoding.temperature for r in loop.policy.requests]  # type: ignore[attr-defined]
    seeds = [r.decoding.seed for r in loop.policy.requests]  # type: ignore[attr-defined]
    assert temperatures == [0.0, 0.7, 0.7] and len(set(seeds)) == 3


def test_a_retry_that_succeeds_continues_the_row(qwen_tokenizer: Any, kb: MemoryRetriever) -> None:
    loop = _loop(lambda r, n: "not json {" if n == 1 else tell(), qwen_tokenizer, kb)
    (run,) = loop.run(PREFIXES[:1])
    assert run.status == OK and run.retries == 1
    assert run.steps[0].malformed and run.steps[1].call == "TellAction"


def test_a_failed_row_does_not_stop_the_others(qwen_tokenizer: Any, kb: MemoryRetriever) -> None:
    def script(request: GenerationRequest, _: int) -> str:
        # the last prefix's message is in no earlier prefix's prompt
        return "???" if PREFIXES[2].patient_message in request.prompt else tell()

    runs = _loop(script, qwen_tokenizer, kb, max_retries=1).run(PREFIXES[:3])
    assert [r.status for r in runs] == [OK, OK, FAILED]


@pytest.mark.parametrize("form", [TAGGED, FENCED, BARE])
def test_each_parse_form_is_accepted_and_counted(
    form: str, qwen_tokenizer: Any, kb: MemoryRetriever
) -> None:
    (run,) = _loop(lambda r, n: tell(form=form), qwen_tokenizer, kb).run(PREFIXES[:1])
    assert run.status == OK and run.forms == [form]


def test_grammar_setting_constrains_every_step(qwen_tokenizer: Any, kb: MemoryRetriever) -> None:
    def script(request: GenerationRequest, _: int) -> str:
        assert request.constraint is not None and request.prompt.endswith("<tool_call>\n")
        if _responses(request.prompt):
            return ask(form="constrained")
        return tool_call("RetrievalAction", "constrained", reasoning="查", queries=["头痛"])

    (run,) = _loop(script, qwen_tokenizer, kb, grammar=True).run(PREFIXES[:1])
    assert run.status == OK and [s.call for s in run.steps] == ["RetrievalAction", "AskAction"]


def test_parse_takes_the_last_valid_call_and_rejects_unknown_tools() -> None:
    text = tell("first") + "\n" + tell("second")
    parsed = parse_call(text)
    assert (
        not isinstance(parsed, type(None)) and getattr(parsed, "arguments", {})["text"] == "second"
    )
    unknown = parse_call(tool_call("Diagnose", reasoning="x", text="y"))
    assert getattr(unknown, "reason", None) == "unknown_tool"
    missing = parse_call(tool_call("TellAction", reasoning="x"))
    assert getattr(missing, "reason", None) == "invalid_arguments"
    not_allowed = parse_call(retrieve("q"), frozenset({"AskAction", "TellAction"}))
    assert getattr(not_allowed, "reason", None) == "not_allowed"
