"""The in-process student on the tiny random Qwen2: batching, grammar, adapters, seeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from ark_assets.lib.agent.loop import CALL_OPENING, FINAL_TOOLS
from ark_assets.lib.agent.parse import ParsedCall, parse_call, tool_call_schema
from ark_assets.lib.agent.policy import Decoding, GenerationRequest
from ark_assets.lib.agent.transformers_policy import TransformersPolicy
from ark_assets.lib.synthesis.models import Turn
from ark_assets.lib.training.render import dialogue_messages, prompt_text

GREEDY = Decoding(max_new_tokens=12)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny matrices gain nothing from threads, and on shared cores torch's OpenMP workers
    spin-wait for each other: ten times slower here with two threads than with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def policy(tiny_model: Path) -> TransformersPolicy:
    policy = TransformersPolicy.load(tiny_model, device="cpu")
    # At initialisation scale the random model echoes the prompt's last token ("\n" at every
    # step): every row would print the same text, and a batching bug could not show.
    with torch.no_grad():
        for name, weight in policy.model.named_parameters():
            if name.endswith("proj.weight"):
                weight.mul_(30)
    return policy


@pytest.fixture(scope="module")
def prompts(policy: TransformersPolicy) -> list[str]:
    """Four chats of different lengths (so the batch is padded), in both languages."""
    cough = [Turn(patient="咳嗽", doctor="多久了？"), Turn(patient="一周", doctor="有痰吗？")]
    chats = [
        ("en", [], "I have a headache."),
        ("zh", [], "我头疼三天了，还有点发烧，怎么办？"),
        ("en", [Turn(patient="My knee hurts.", doctor="Since when?")], "Two weeks, running."),
        ("zh", cough, "黄痰"),
    ]
    return [prompt_text(dialogue_messages(*chat), policy.tokenizer) for chat in chats]


def test_a_batch_decodes_as_each_prompt_alone(
    policy: TransformersPolicy, prompts: list[str]
) -> None:
    batched = policy.generate([GenerationRequest(p, GREEDY) for p in prompts])
    alone = [policy.generate([GenerationRequest(p, GREEDY)])[0] for p in prompts]

    assert len({g.prompt_tokens for g in batched}) == len(prompts)  # really padded
    assert len({g.text for g in batched}) > 1  # the rows do differ
    for together, single in zip(batched, alone, strict=True):
        assert together.text == single.text
        assert together.prompt_tokens == single.prompt_tokens
        assert together.completion_tokens == len(together.token_logprobs) == 12
        assert together.finish_reason == "length"
        assert together.token_logprobs == pytest.approx(single.token_logprobs, abs=1e-4)
        assert all(lp <= 0 for lp in together.token_logprobs)


def _capped(schema: Any) -> Any:
    """``schema`` with short strings and lists: a random model under a grammar writes strings
    until its token budget runs out, and the test wants a whole call."""
    if isinstance(schema, list):
        return [_capped(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    capped = {k: _capped(v) for k, v in schema.items()}
    if capped.get("type") == "string":
        capped["maxLength"] = 6
    if capped.get("type") == "array":
        capped["maxItems"] = 1
    return capped


def test_a_batch_past_its_token_budget_is_cut_by_prompt_length(
    policy: TransformersPolicy, prompts: list[str]
) -> None:
    requests = [GenerationRequest(p, GREEDY) for p in prompts]
    whole = policy.generate(requests)
    lengths = [g.prompt_tokens for g in whole]
    calls: list[list[int]] = []
    run, budget = policy._run, policy.max_batch_tokens

    def spy(*args: Any) -> Any:
        calls.append([len(ids) for ids in args[-1]])
        return run(*args)

    policy._run = spy  # type: ignore[method-assign]
    policy.max_batch_tokens = 2 * (max(lengths) + GREEDY.max_new_tokens)
    try:
        cut = policy.generate(requests)
    finally:
        del policy._run
        policy.max_batch_tokens = budget
    assert len(calls) > 1
    assert all(len(c) * (max(c) + GREEDY.max_new_tokens) <= 2 * (max(lengths) + 12) for c in calls)
    assert [n for call in calls for n in call] == sorted(lengths)  # shortest first
    assert [g.text for g in cut] == [g.text for g in whole]  # in the requests' order
    assert [g.prompt_tokens for g in cut] == lengths


def test_a_constrained_request_generates_a_valid_call(
    policy: TransformersPolicy, prompts: list[str]
) -> None:
    schema = _capped(tool_call_schema(FINAL_TOOLS))
    decoding = Decoding(max_new_tokens=300)
    requests = [GenerationRequest(p + CALL_OPENING, decoding, schema) for p in prompts[:2]]
    unusable = GenerationRequest(prompts[0] + CALL_OPENING, decoding, {"type": "frob"})

    *calls, failed = policy.generate([*requests, unusable])

    for call in calls:
        assert call.finish_reason == "stop", call
        assert call.completion_tokens == len(call.token_logprobs)
        arguments = json.loads(call.text)["arguments"]  # the JSON only, nothing after it
        parsed = parse_call(f"{CALL_OPENING}{call.text}\n</tool_call>", FINAL_TOOLS)
        assert isinstance(parsed, ParsedCall), parsed
        assert parsed.name in FINAL_TOOLS and parsed.arguments == arguments
    assert failed.finish_reason == "error" and "frob" in (failed.error or "")


def test_a_lora_adapter_is_applied(tiny_model: Path, prompts: list[str], tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    lora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=2, target_modules=["q_proj", "v_proj"]),
    )
    torch.manual_seed(0)
    with torch.no_grad():
        for name, weight in lora.named_parameters():
            if "lora_B" in name:  # B starts at zero: a fresh adapter changes nothing
                weight.normal_(std=1.0)
    lora.save_pretrained(tmp_path / "adapter")

    requests = [GenerationRequest(p, GREEDY) for p in prompts[:2]]
    merged = TransformersPolicy.load(tiny_model, tmp_path / "adapter", device="cpu")
    unmerged = TransformersPolicy.load(
        tiny_model, tmp_path / "adapter", device="cpu", merge_adapter=False
    )
    base = TransformersPolicy.load(tiny_model, device="cpu")
    with_merged, with_adapter, without = (p.generate(requests) for p in (merged, unmerged, base))

    assert merged.identity.adapter == str(tmp_path / "adapter")
    # merged into the weights: no LoRA layer is left to run, and the outputs are the adapter's
    assert not any("lora" in name for name, _ in merged.model.named_parameters())
    assert any("lora" in name for name, _ in unmerged.model.named_parameters())
    for fused, on, off in zip(with_merged, with_adapter, without, strict=True):
        assert on.token_logprobs != pytest.approx(off.token_logprobs, abs=1e-3)
        assert fused.text == on.text
        assert fused.token_logprobs == pytest.approx(on.token_logprobs, abs=1e-4)


def test_sampling_is_reproducible_from_its_seed(
    policy: TransformersPolicy, prompts: list[str]
) -> None:
    def sample(seed: int) -> list[str]:
        decoding = Decoding(max_new_tokens=8, temperature=0.8, top_p=0.95, seed=seed)
        return [g.text for g in policy.generate([GenerationRequest(p, decoding) for p in prompts])]

    rng = torch.get_rng_state()
    first = sample(7)

    assert sample(7) == first
    assert sample(8) != first
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's random state is untouched


def test_the_shared_prefix_cache_changes_no_output(
    policy: TransformersPolicy, prompts: list[str]
) -> None:
    requests = [GenerationRequest(p, GREEDY) for p in prompts]
    policy.prefix_cache = False
    policy._prefixes.clear()
    policy._recent = []  # earlier tests' prompts
    try:
        uncached = policy.generate(requests)
        assert not policy._prefixes
    finally:
        policy.prefix_cache = True
    cached = policy.generate(requests)
    # one prefix per language (the system message and tool schemas: most of each prompt), and
    # each row's own prompt but its last token
    kept = dict(policy._prefixes)
    own = {tuple(ids[:-1]) for ids in policy._recent}
    assert len(own) == len(prompts) and own <= set(kept)
    shared = set(kept) - own
    assert len(shared) == 2
    assert all(len(ids) > 0.5 * min(g.prompt_tokens for g in cached) for ids in shared)
    for with_cache, without in zip(cached, uncached, strict=True):
        assert with_cache.text == without.text
        assert with_cache.prompt_tokens == without.prompt_tokens
        assert with_cache.token_logprobs == pytest.approx(without.token_logprobs, abs=1e-4)
    # one row at a time reuses those prefixes (computed once), and decodes the same
    alone = [policy.generate([request])[0] for request in requests]
    assert all(policy._prefixes[ids] is kv for ids, kv in kept.items())
    assert [g.text for g in alone] == [g.text for g in uncached]


def test_a_longer_step_extends_its_earlier_prompt_cache(
    policy: TransformersPolicy, prompts: list[str]
) -> None:
    step = prompts[0] + "It started on Monday and gets worse in the evening. " * 8
    later = step + "<tool_call>"  # the next step's prompt starts with this one
    policy.prefix_cache = False
    try:
        expected = policy.generate([GenerationRequest(later, GREEDY)])[0]
    finally:
        policy.prefix_cache = True
    policy.forget_prefixes()
    policy.generate([GenerationRequest(p, GREEDY) for p in prompts])  # the language prefixes
    policy.generate([GenerationRequest(step, GREEDY)])
    computed: list[tuple[int, int]] = []
    prefill = policy._prefill

    def spy(prefix: tuple[int, ...], kept: tuple[int, ...]) -> Any:
        computed.append((len(prefix), len(kept)))
        return prefill(prefix, kept)

    policy._prefill = spy  # type: ignore[method-assign]
    try:
        (result,) = policy.generate([GenerationRequest(later, GREEDY)])
        (retry,) = policy.generate([GenerationRequest(later, GREEDY)])
    finally:
        del policy._prefill
    step_ids = policy.tokenizer(step, add_special_tokens=False)["input_ids"]
    later_ids = policy.tokenizer(later, add_special_tokens=False)["input_ids"]
    # only the new tokens are computed, from all of the earlier step; a retry computes nothing
    assert computed == [(len(later_ids) - 1, len(step_ids) - 1)]
    assert result.text == retry.text == expected.text
    assert result.token_logprobs == pytest.approx(expected.token_logprobs, abs=1e-4)


def test_kept_prefixes_stay_within_their_token_budget(
    policy: TransformersPolicy, prompts: list[str]
) -> None:
    english = [GenerationRequest(p, GREEDY) for p in prompts[0::2]]
    chinese = [GenerationRequest(p, GREEDY) for p in prompts[1::2]]
    policy.forget_prefixes()
    budget = policy.prefix_cache_tokens
    try:
        policy.generate(english)
        kept = set(policy._prefixes)  # English's system prefix and each row's own prompt
        assert len(kept) == 3
        policy.prefix_cache_tokens = sum(map(len, kept))  # room for those
        policy.generate(chinese)
        newer = set(policy._prefixes)  # the least recently used (English) ones were evicted
        assert len(newer) == 3 and not newer & kept
        policy.prefix_cache_tokens = 1  # less than the batch in use: those are kept anyway
        policy.generate(chinese)
        assert set(policy._prefixes) == {tuple(ids[:-1]) for ids in policy._recent}
    finally:
        policy.prefix_cache_tokens = budget
