"""Rendering Ark paths into Qwen2.5 tool-call chats and token examples."""

import json
from importlib import resources

import pytest

from ark_assets.lib.training.render import (
    IGNORE_INDEX,
    AskAction,
    chat_template,
    examples_for,
    messages_for,
    parse_tool_call,
    split_of,
    tool_schemas,
    validate_call,
)
from ark_assets.lib.training.sft_records import role_order_valid
from ark_assets.lib.training.tokenizer import build_qwen25_tokenizer
from ark_assets_tests.lib.training.paths import ask_path, tell_path

PATHS = {"ask_2_rounds": ask_path(), "ask_1_round": ask_path(1), "tell": tell_path()}


def _official_qwen25_template() -> str:
    return (resources.files("trl") / "chat_templates" / "qwen2_5.jinja").read_text()


@pytest.mark.parametrize("name", sorted(PATHS))
def test_own_template_renders_exactly_like_qwen25(name: str) -> None:
    messages = messages_for(PATHS[name])
    ours = build_qwen25_tokenizer(chat_template())
    official = build_qwen25_tokenizer(_official_qwen25_template())
    for generation_prompt in (False, True):
        kwargs = {"tools": tool_schemas(), "tokenize": False}
        assert ours.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, **kwargs
        ) == official.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, **kwargs
        )


def test_chat_shape_follows_medark(qwen_tokenizer) -> None:
    messages = messages_for(ask_path())
    assert [m["role"] for m in messages] == [
        "system", "user", "assistant", "tool", "assistant", "tool", "assistant",
    ]  # fmt: skip
    assert messages[1]["content"].splitlines()[-3:] == [
        "患者：医生你好，我头疼。", "医生：疼了多久了？", "患者：三天了，晚上睡不好。",
    ]  # fmt: skip
    results = json.loads(messages[3]["content"])
    assert results[1] == {"query": "头痛 发烧", "result": "知识库中没有找到相关资料。"}
    final = messages[-1]["tool_calls"][0]["function"]
    assert final["name"] == "AskAction"
    assert final["arguments"]["text"] == "有没有发烧？量过体温吗？"
    assert final["arguments"]["symptom"] == ["发烧"] and "medcine" in final["arguments"]
    text = qwen_tokenizer.apply_chat_template(messages, tools=tool_schemas(), tokenize=False)
    assert "<tools>" in text and text.count("<tool_call>") == 3 + 2  # 3 calls + the system hint
    assert text.count("<tool_response>") == 2 and role_order_valid(messages)


@pytest.mark.parametrize("name", sorted(PATHS))
def test_one_example_per_assistant_turn_with_labels_on_that_turn(name: str, qwen_tokenizer) -> None:
    messages = messages_for(PATHS[name])
    examples = examples_for(messages, qwen_tokenizer)
    assert len(examples) == sum(m["role"] == "assistant" for m in messages)
    for example in examples:
        labels = example.labels()
        assert labels[: example.prompt_tokens] == [IGNORE_INDEX] * example.prompt_tokens
        decoded = qwen_tokenizer.decode(labels[example.prompt_tokens :])
        assert decoded == example.label_text
        assert decoded.startswith("<tool_call>") and decoded.endswith("</tool_call><|im_end|>")
        name_, arguments = parse_tool_call(example.label_text)
        assert name_ == example.action
        validate_call(name_, arguments)
        prefix = qwen_tokenizer.decode(example.input_ids[: example.prompt_tokens])
        assert prefix.endswith("<|im_start|>assistant\n")


def test_tool_schemas_are_generated_from_the_models() -> None:
    tools = {t["function"]["name"]: t["function"] for t in tool_schemas()}
    assert sorted(tools) == ["AskAction", "RetrievalAction", "TellAction"]
    ask = tools["AskAction"]["parameters"]
    assert set(ask["required"]) == set(AskAction.model_fields)
    assert ask["properties"]["medcine"]["type"] == "array"


def test_split_is_deterministic_and_roughly_proportional() -> None:
    keys = [f"{i:064x}" for i in range(2000)]
    splits = [split_of(k, 10) for k in keys]
    assert splits == [split_of(k, 10) for k in keys]
    assert 140 < splits.count("heldout") < 260


def test_invalid_tool_call_is_rejected() -> None:
    with pytest.raises(ValueError):
        validate_call("AskAction", {"reasoning": "x"})
    with pytest.raises(KeyError):
        validate_call("DropTables", {})


@pytest.mark.parametrize("name", sorted(PATHS))
def test_rendered_chat_golden(name: str, qwen_tokenizer, snapshot) -> None:
    """The exact training text: any change to prompts, tools or template is a reviewed diff."""
    messages = messages_for(PATHS[name])
    assert (
        qwen_tokenizer.apply_chat_template(messages, tools=tool_schemas(), tokenize=False)
        == snapshot
    )
