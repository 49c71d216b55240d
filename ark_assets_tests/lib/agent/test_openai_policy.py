"""The student behind an OpenAI-compatible completions server.

Against a real server (llama-cpp-python serving the SmolLM2-135M GGUF on 127.0.0.1, as the
teacher's test does; skipped only when ``llama_cpp`` cannot be imported): batches come back in
order with tokens and log-probabilities, and a constrained request is a valid Tell call.
Against a scripted endpoint: retries, Retry-After, failures that stay one request's failure,
the unavailable error, the constraint's request field per server, the concurrency cap.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ark_assets.lib.agent.loop import CALL_CLOSING, CALL_OPENING
from ark_assets.lib.agent.openai_policy import OpenAIPolicy, PolicyUnavailable
from ark_assets.lib.agent.parse import ParsedCall, parse_call, tool_call_schema
from ark_assets.lib.agent.policy import STOP_STRINGS, Decoding, GenerationRequest, PolicyIdentity
from ark_assets.lib.synthesis.teacher import RetryPolicy
from ark_assets.testing.llama_server import llama_server
from ark_assets.testing.scripted_endpoint import Reply, ScriptedEndpoint

TELL = frozenset({"TellAction"})


def _chatml(user: str) -> str:
    """A prompt in SmolLM2's chat template (ChatML, like the Qwen2.5 template SFT renders)."""
    return (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is in the test extra (make test-llm)")
    with llama_server(tmp_path_factory.mktemp("llama") / "server.log", n_ctx=2048) as url:
        yield url


def test_a_real_server_generates_a_batch_in_order_with_logprobs(server: str) -> None:
    policy = OpenAIPolicy(model="smollm2-135m", base_url=server, max_concurrency=2)
    short = GenerationRequest(_chatml("Hi."), Decoding(max_new_tokens=24))
    long = GenerationRequest(
        _chatml("Name three common causes of a headache that lasts for two days."),
        Decoding(max_new_tokens=24),
    )
    cut = GenerationRequest(_chatml("Describe the heart."), Decoding(max_new_tokens=3))
    first, second, third = policy.generate([short, long, cut])
    assert first.prompt_tokens < second.prompt_tokens  # in request order
    for generation in (first, second, third):
        assert generation.error is None and generation.text.strip()
        assert generation.completion_tokens > 0
        assert len(generation.token_logprobs) == generation.completion_tokens
        assert all(p <= 0 for p in generation.token_logprobs)
        assert not any(stop in generation.text for stop in STOP_STRINGS)
    assert (third.finish_reason, third.completion_tokens) == ("length", 3)
    assert policy.identity == PolicyIdentity("openai", "smollm2-135m", "")


def test_a_real_server_constrained_to_the_tell_schema_writes_a_tell_call(
    server: str,
) -> None:
    schema = tool_call_schema(TELL)
    for field in schema["properties"]["arguments"]["properties"].values():
        field["maxLength"] = 60  # a 135M model may never close a string; the grammar does
    prompt = _chatml("I have had a mild headache since this morning. What should I do?")
    policy = OpenAIPolicy(model="smollm2-135m", base_url=server)
    [generation] = policy.generate(
        [GenerationRequest(prompt + CALL_OPENING, Decoding(max_new_tokens=160), schema)]
    )
    assert generation.finish_reason == "stop", generation
    assert json.loads(generation.text)["name"] == "TellAction"
    parsed = parse_call(CALL_OPENING + generation.text + CALL_CLOSING, TELL)
    assert isinstance(parsed, ParsedCall) and parsed.form == "tool_call", parsed


def _completion(text: str, finish_reason: str = "stop", usage: bool = True) -> Reply:
    body: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "scripted",
        "choices": [
            {
                "index": 0,
                "text": text,
                "finish_reason": finish_reason,
                "logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.5, -0.25]},
            }
        ],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    return Reply(body=json.dumps(body))


def _statuses(*replies: Reply):
    def script(body: dict[str, Any], n: int) -> Reply:
        return replies[min(n, len(replies)) - 1]

    return script


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[ScriptedEndpoint]:
    with ScriptedEndpoint(request.param) as server:
        yield server


def _policy(server: ScriptedEndpoint, **kwargs: Any) -> tuple[OpenAIPolicy, list[float]]:
    pauses: list[float] = []
    policy = OpenAIPolicy(
        model="ark-sft", base_url=server.base_url, sleep=pauses.append, timeout_s=10, **kwargs
    )
    return policy, pauses


_HI = GenerationRequest("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "endpoint",
    [_statuses(Reply(429, headers={"Retry-After": "3"}), _completion("hello"))],
    indirect=True,
)
def test_a_rate_limit_is_retried_after_retry_after(endpoint: ScriptedEndpoint) -> None:
    policy, pauses = _policy(endpoint)
    [generation] = policy.generate([_HI])
    assert (generation.text, generation.finish_reason, generation.error) == ("hello", "stop", None)
    assert (generation.prompt_tokens, generation.completion_tokens) == (7, 2)
    assert generation.token_logprobs == [-0.5, -0.25]
    assert pauses == [3.0] and len(endpoint.requests) == 2


@pytest.mark.parametrize("endpoint", [_statuses(Reply(500))], indirect=True)
def test_a_server_error_on_every_attempt_is_an_error_generation(
    endpoint: ScriptedEndpoint,
) -> None:
    policy, pauses = _policy(endpoint, retry=RetryPolicy(max_attempts=3))
    [generation] = policy.generate([_HI])
    assert generation.finish_reason == "error" and generation.text == ""
    assert generation.error == "failed 3 attempts: 500 server error"
    assert len(endpoint.requests) == 3 and len(pauses) == 2


def _rejects_bad(body: dict[str, Any], n: int) -> Reply:
    if "bad" in body["prompt"]:
        return Reply(400)
    return _completion(body["prompt"].upper(), finish_reason="length", usage=False)


@pytest.mark.parametrize("endpoint", [_rejects_bad], indirect=True)
def test_a_rejected_request_fails_alone_and_the_batch_keeps_its_order(
    endpoint: ScriptedEndpoint,
) -> None:
    policy, pauses = _policy(endpoint, max_concurrency=3)
    prompts = ["one", "bad", "three", "four"]
    generations = policy.generate([GenerationRequest(p) for p in prompts])
    assert [g.text for g in generations] == ["ONE", "", "THREE", "FOUR"]
    assert [g.finish_reason for g in generations] == ["length", "error", "length", "length"]
    assert (generations[1].error or "").startswith("rejected: 400 from the server")
    assert (generations[0].prompt_tokens, generations[0].completion_tokens) == (0, 0)
    assert len(endpoint.requests) == 4 and pauses == []  # a rejection is not retried


@pytest.mark.parametrize("endpoint", [_statuses(Reply(401))], indirect=True)
def test_refused_credentials_raise_unavailable(endpoint: ScriptedEndpoint) -> None:
    policy, _ = _policy(endpoint)
    with pytest.raises(PolicyUnavailable, match="ARK_POLICY_API_KEY"):
        policy.generate([_HI])
    assert len(endpoint.requests) == 1


@pytest.mark.parametrize("endpoint", [_statuses(_completion("{}"))], indirect=True)
@pytest.mark.parametrize(
    ("constraint_param", "field"),
    [
        ("grammar", "grammar"),
        ("json_schema", "json_schema"),
        ("structured_outputs", "structured_outputs"),
        ("guided_json", "guided_json"),
        ("none", None),
    ],
)
def test_the_schema_travels_in_the_field_the_server_reads(
    endpoint: ScriptedEndpoint, constraint_param: str, field: str | None
) -> None:
    if constraint_param == "grammar":
        pytest.importorskip("llama_cpp", reason="the grammar is converted by llama-cpp-python")
    schema = tool_call_schema(TELL)
    policy, _ = _policy(endpoint, constraint_param=constraint_param)
    constrained = GenerationRequest("prompt" + CALL_OPENING, Decoding(seed=5), schema)
    policy.generate([constrained, GenerationRequest("free")])
    sent, free = sorted(endpoint.requests, key=lambda body: body["prompt"] == "free")
    assert (sent["model"], sent["seed"], sent["logprobs"]) == ("ark-sft", 5, 1)
    assert sent["stop"] == list(STOP_STRINGS) and sent["max_tokens"] == 384
    fields = {"grammar", "json_schema", "structured_outputs", "guided_json"}
    assert not fields & set(free)
    assert fields & set(sent) == ({field} if field else set())
    if constraint_param == "grammar":
        assert '"\\"TellAction\\""' in sent["grammar"]  # GBNF: the name is a fixed literal
    elif constraint_param == "structured_outputs":
        assert sent["structured_outputs"] == {"json": schema}
    elif field:
        assert sent[field] == schema


@pytest.mark.parametrize("endpoint", [_statuses(_completion("x"))], indirect=True)
def test_requests_in_flight_stay_under_the_cap(endpoint: ScriptedEndpoint) -> None:
    endpoint.latency_s = 0.05
    policy, _ = _policy(endpoint, max_concurrency=2)
    generations = policy.generate([GenerationRequest(str(i)) for i in range(6)])
    assert [g.text for g in generations] == ["x"] * 6
    assert endpoint.peak_in_flight == 2


def test_an_unknown_constraint_param_names_the_setting() -> None:
    with pytest.raises(ValueError, match="ARK_POLICY_CONSTRAINT"):
        OpenAIPolicy(model="m", base_url="http://127.0.0.1:1/v1", constraint_param="outlines")
