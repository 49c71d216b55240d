"""DPO triples: the prompt is the SFT chat without its final action; chosen and rejected are
rendered like SFT's last step; every filter is a counted drop; every pair type option."""

import json
from typing import Any

import pytest

from ark_assets.lib.training import dpo_pairs
from ark_assets.lib.training.dpo_pairs import PairInput, TripleSettings, build_triples
from ark_assets.lib.training.render import (
    AskAction,
    TellAction,
    examples_for,
    messages_for,
    parse_tool_call,
)
from ark_assets_tests.lib.training.paths import ask_path, tell_path

ENTITY_LISTS = {"disease": [], "symptom": ["发烧"], "medcine": [], "surgery": [],
                "body_part": [], "medical_check": ["体温"], "concept": []}  # fmt: skip


def _chosen(path: Any) -> dict[str, Any]:
    return dpo_pairs.chosen_row(path, None)


def _rejection(path: Any, action: Any | None, failure: str | None = None) -> dict[str, Any]:
    return {
        "conversation_id": path.conversation_id,
        "turn_index": path.turn_index,
        "mode": "forced_prefix",
        "status": "ok" if action is not None else "failed",
        "failure": failure,
        "action": type(action).__name__ if action is not None else None,
        "arguments_json": action.model_dump_json() if action is not None else None,
    }


def _with_id(path: Any, conversation_id: str) -> Any:
    return path.model_copy(update={"conversation_id": conversation_id})


TELL = TellAction(reasoning="患者描述已足够，可以给出建议。", text="多喝水，注意休息。")
ASK = AskAction(reasoning="需要知道体温。", text="量过体温吗？", **ENTITY_LISTS)


def test_prompt_and_chosen_are_sfts_last_example(qwen_tokenizer: Any) -> None:
    path = ask_path()
    (triple,) = build_triples(
        [PairInput(path, _chosen(path), _rejection(path, TELL))], qwen_tokenizer,
        TripleSettings(),
    )[0].iter_rows(named=True)  # fmt: skip
    last = examples_for(messages_for(path), qwen_tokenizer)[-1]
    # byte for byte the SFT example of the path's final action
    assert triple["prompt"] + triple["chosen"] == qwen_tokenizer.decode(last.input_ids)
    assert triple["chosen"] == last.label_text
    assert triple["prompt"].endswith("<|im_start|>assistant\n")
    assert triple["prompt"].count("<tool_response>") == 2  # the teacher's retrieval turns
    name, arguments = parse_tool_call(triple["rejected"])
    assert name == "TellAction" and arguments["text"] == TELL.text
    assert triple["pair_type"] == "different"
    assert (triple["chosen_action"], triple["rejected_action"]) == ("AskAction", "TellAction")
    assert triple["prompt_tokens"] == last.prompt_tokens
    assert not dpo_pairs.invalid_triples(build_triples(
        [PairInput(path, _chosen(path), _rejection(path, TELL))], qwen_tokenizer,
        TripleSettings())[0])  # fmt: skip


def _golden_inputs() -> list[PairInput]:
    """Two pairs kept (one of each type) and one pair per drop rule, each its own conversation."""
    ask, tell = ask_path(), tell_path()

    def pair(path: Any, name: str, rejected: Any, **chosen: Any) -> PairInput:
        path = _with_id(path, name)
        row = {**_chosen(path), **chosen} if chosen.get("arguments_json", "") is not None else None
        return PairInput(path, row, _rejection(path, rejected))

    empty: dict[str, list[str]] = {name: [] for name in ENTITY_LISTS}
    short = TellAction(reasoning="好", text="x").model_dump_json()
    failed = _with_id(tell, "failed")
    same_as_chosen = dpo_pairs.action_of("TellAction", _chosen(tell)["arguments_json"])
    return [
        pair(ask, "different", TELL),
        pair(tell, "same", TELL),
        PairInput(failed, _chosen(failed), _rejection(failed, None, "malformed after 3 tries")),
        pair(tell, "nochosen", TELL, arguments_json=None),
        pair(tell, "short", TELL, arguments_json=short),
        pair(tell, "tag", TellAction(reasoning="<tool_call>再查一次", text="多喝水。")),
        pair(ask, "lists", AskAction(reasoning="需要知道体温。", text="量过体温吗？", **empty)),
        pair(tell, "same_as_chosen", same_as_chosen),
        PairInput(_with_id(tell, "not_run"), _chosen(tell), None),
    ]


def test_every_filter_is_a_counted_drop(qwen_tokenizer: Any) -> None:
    inputs = _golden_inputs()
    triples, drops = build_triples(inputs, qwen_tokenizer, TripleSettings())
    assert triples.height + drops.height == len(inputs)  # nothing silently dropped
    assert sorted(triples["pair_type"].to_list()) == ["different", "same"]
    rules = dict(zip(drops["conversation_id"], drops["rule"], strict=True))
    assert rules == {
        "failed": "rejection_failed",
        "nochosen": "no_chosen",
        "short": "chosen_reasoning_short",
        "tag": "rejected_reasoning_tool_tag",
        "lists": "rejected_ask_without_entities",
        "same_as_chosen": "identical",
        "not_run": "not_run",
    }
    assert set(drops["rule"]) <= set(dpo_pairs.DROP_RULES)
    assert "malformed after 3 tries" in drops.filter(rule="rejection_failed")["message"][0]
    counts = dpo_pairs.triple_counts(len(inputs), triples, drops)
    assert counts["by_pair_type"] == {"different": 1, "same": 1}
    assert counts["drops_by_rule"]["identical"] == 1 and counts["dropped"] == 7


@pytest.mark.parametrize(
    ("pair_types", "kept"), [("all", {"different", "same"}), ("same", {"same"}),
                             ("different", {"different"})],
)  # fmt: skip
def test_pair_types_keep_what_they_name(
    pair_types: str, kept: set[str], qwen_tokenizer: Any
) -> None:
    settings = TripleSettings(pair_types=pair_types)  # type: ignore[arg-type]
    triples, drops = build_triples(_golden_inputs(), qwen_tokenizer, settings)
    assert set(triples["pair_type"]) == kept
    excluded = drops.filter(rule="pair_type_excluded").height
    assert excluded == 2 - len(kept)


def test_over_length_pairs_are_dropped_with_their_length(qwen_tokenizer: Any) -> None:
    path = ask_path()
    triples, drops = build_triples(
        [PairInput(path, _chosen(path), _rejection(path, TELL))], qwen_tokenizer,
        TripleSettings(max_length=50),
    )  # fmt: skip
    assert triples.is_empty() and drops["rule"].to_list() == ["over_length"]
    assert "> max_length 50" in drops["message"][0]


def test_the_validity_check_catches_a_broken_triple(qwen_tokenizer: Any) -> None:
    path = ask_path()
    triples, _ = build_triples(
        [PairInput(path, _chosen(path), _rejection(path, TELL))], qwen_tokenizer,
        TripleSettings(),
    )  # fmt: skip
    same = triples.with_columns(rejected=triples["chosen"])
    assert dpo_pairs.invalid_triples(same)[0]["reason"] == "chosen equals rejected"
    broken = triples.with_columns(rejected=triples["rejected"].str.replace("TellAction", "Nope"))
    assert "rejected" in dpo_pairs.invalid_triples(broken)[0]["reason"]
    messages = json.loads(triples["messages_json"][0])
    assert [m["role"] for m in messages][-2:] == ["assistant", "assistant"]  # chosen, rejected
