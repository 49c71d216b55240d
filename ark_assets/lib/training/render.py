"""Ark paths → Qwen2.5 tool-calling chats → token examples with assistant-only labels.

MedArk's second pass, with transformers instead of a Go template: a system turn carrying the
three tools, a user turn with the instruction and the dialogue so far, then for each retrieval
round an assistant ``RetrievalAction`` call and a ``<tool_response>`` turn with the refined
results, and finally the ``AskAction`` or ``TellAction`` call that reproduces the real doctor
reply. Each assistant turn becomes one training example (history + that turn), labels on that
turn only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import BaseModel, Field

from ark_assets.lib.synthesis.models import ArkPath, Entities, Turn

PROMPT_VERSION = "v1"
CHAT_TEMPLATE_NAME = "qwen2_5_tools.jinja"
IGNORE_INDEX = -100
Messages = list[dict[str, Any]]


class RetrievalAction(BaseModel):
    """Query the medical knowledge base before deciding what to say."""

    reasoning: str = Field(description="Why this information is needed now.")
    queries: list[str] = Field(description="One or two questions for the knowledge base.")


class AskAction(BaseModel):
    """Ask the patient for the information that is missing."""

    reasoning: str = Field(description="What is missing and why it matters.")
    disease: list[str] = Field(description="Diseases asked about.")
    symptom: list[str] = Field(description="Symptoms asked about.")
    medcine: list[str] = Field(description="Medicines asked about.")
    surgery: list[str] = Field(description="Operations asked about.")
    body_part: list[str] = Field(description="Body parts asked about.")
    medical_check: list[str] = Field(description="Examinations or results asked about.")
    concept: list[str] = Field(description="Other things asked about (onset, history, diet…).")
    text: str = Field(description="The question to the patient.")


class TellAction(BaseModel):
    """Answer the patient: the information is sufficient."""

    reasoning: str = Field(description="Why the information suffices.")
    text: str = Field(description="The answer to the patient.")


ACTIONS: tuple[type[BaseModel], ...] = (RetrievalAction, AskAction, TellAction)


@functools.cache
def tool_schemas() -> list[dict[str, Any]]:
    """The three tools as OpenAI/Qwen function schemas, generated from the pydantic models."""
    tools = []
    for action in ACTIONS:
        schema = action.model_json_schema()
        parameters = {
            "type": "object",
            "properties": {
                name: {k: v for k, v in prop.items() if k != "title"}
                for name, prop in schema["properties"].items()
            },
            "required": schema.get("required", []),
        }
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": action.__name__,
                    "description": (action.__doc__ or "").strip(),
                    "parameters": parameters,
                },
            }
        )
    return tools


def chat_template() -> str:
    """ark-assets' Qwen2.5-equivalent ChatML tool template (for tokenizers that lack one)."""
    return (resources.files("ark_assets") / "templates" / CHAT_TEMPLATE_NAME).read_text()


@dataclass(frozen=True)
class RenderPrompt:
    system: str
    instruction: str
    patient: str
    doctor: str
    no_result: str
    version: str


@functools.cache
def render_prompt(language: str, version: str = PROMPT_VERSION) -> RenderPrompt:
    path = resources.files("ark_assets") / "prompts" / "sft" / f"{language}.{version}.toml"
    return RenderPrompt(**tomllib.loads(path.read_text()), version=f"sft/{language}.{version}")


def _call(action: BaseModel) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": type(action).__name__, "arguments": action.model_dump()},
            }
        ],
    }


def final_action(path: ArkPath, entities: Entities | None = None) -> AskAction | TellAction:
    """The Ask or Tell call reproducing the doctor's real reply.

    ``entities`` are the regenerated lists (``ark_entities``) when available, else the ones the
    teacher gave in its Response.
    """
    response = path.response
    if not response.is_asking:
        return TellAction(reasoning=response.reasoning, text=path.doctor_reply)
    lists = (entities or response.entities).as_lists()
    return AskAction(reasoning=response.reasoning, text=path.doctor_reply, **lists)


def dialogue_messages(language: str, history: Sequence[Turn], patient_message: str) -> Messages:
    """The system turn and the user turn (instruction + the dialogue so far): how every chat
    opens, in training and at inference."""
    prompt = render_prompt(language)
    lines = [prompt.instruction, ""]
    for turn in history:
        lines += [prompt.patient + turn.patient, prompt.doctor + turn.doctor]
    lines.append(prompt.patient + patient_message)
    return [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": "\n".join(lines)},
    ]


def call_message(action: BaseModel) -> dict[str, Any]:
    """An assistant turn calling ``action``'s tool."""
    return _call(action)


def tool_response(language: str, results: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    """The tool turn answering a RetrievalAction: ``(query, refined result or None)`` per query,
    as the JSON list SFT trains on (``None``: nothing passed the filter)."""
    no_result = render_prompt(language).no_result
    rows = [{"query": query, "result": refined or no_result} for query, refined in results]
    return {"role": "tool", "content": json.dumps(rows, ensure_ascii=False)}


def messages_for(path: ArkPath, entities: Entities | None = None) -> Messages:
    messages = dialogue_messages(path.language, path.history, path.patient_message)
    for round_ in path.rounds:
        if not round_.request.queries:
            continue  # a round that asked for nothing new ended the loop; nothing was called
        request = RetrievalAction(
            reasoning=round_.request.reasoning, queries=list(round_.request.queries)
        )
        results = [
            (result.query, result.refined.refined_result if result.refined else None)
            for result in round_.results
        ]
        messages.append(_call(request))
        messages.append(tool_response(path.language, results))
    messages.append(_call(final_action(path, entities)))
    return messages


def prompt_text(messages: Messages, tokenizer: Any) -> str:
    """The chat rendered up to the next assistant turn, byte for byte as in training."""
    return str(
        tokenizer.apply_chat_template(
            messages, tools=tool_schemas(), add_generation_prompt=True, tokenize=False
        )
    )


@dataclass(frozen=True)
class Example:
    """One training example: the chat up to and including one assistant turn."""

    step: int  # index of the assistant turn within the path (0-based)
    action: str  # RetrievalAction, AskAction or TellAction
    input_ids: list[int]
    prompt_tokens: int  # labels are IGNORE_INDEX before this position
    label_text: str  # the assistant turn as rendered: what the labels must decode to

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    def labels(self) -> list[int]:
        prompt = [IGNORE_INDEX] * self.prompt_tokens
        return prompt + self.input_ids[self.prompt_tokens :]


def completion(messages: Messages, tokenizer: Any) -> tuple[str, str]:
    """``(prompt, completion)`` of a chat ending in an assistant turn: the chat before it with
    the generation prompt, and that turn as rendered through ``<|im_end|>`` (what SFT labels and
    what DPO's chosen and rejected are)."""
    prompt = prompt_text(messages[:-1], tokenizer)
    full = tokenizer.apply_chat_template(messages, tools=tool_schemas(), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("chat template does not render the prompt as a prefix of the chat")
    end = full.index("<|im_end|>", len(prompt)) + len("<|im_end|>")
    return prompt, full[len(prompt) : end]


def examples_for(messages: list[dict[str, Any]], tokenizer: Any) -> list[Example]:
    """One example per assistant turn; the label span is that turn through ``<|im_end|>``."""
    examples = []
    assistant_turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    for step, index in enumerate(assistant_turns):
        prompt, label_text = completion(messages[: index + 1], tokenizer)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        label_ids = tokenizer(label_text, add_special_tokens=False)["input_ids"]
        name = messages[index]["tool_calls"][0]["function"]["name"]
        examples.append(Example(step, name, prompt_ids + label_ids, len(prompt_ids), label_text))
    return examples


def split_of(medark_key: str, heldout_percent: int) -> str:
    """Deterministic split by conversation: every example of one key lands on the same side.

    Keyed on the MedArk key (not the disambiguated id), so colliding dialogues, which share
    their first turn, never straddle train and held-out.
    """
    bucket = int(hashlib.sha256(f"split:{medark_key}".encode()).hexdigest()[:8], 16) % 100
    return "heldout" if bucket < heldout_percent else "train"


def parse_tool_call(label_text: str) -> tuple[str, dict[str, Any]]:
    """``(name, arguments)`` of the ``<tool_call>`` block in a rendered assistant turn."""
    start = label_text.index("<tool_call>") + len("<tool_call>")
    end = label_text.index("</tool_call>", start)
    call = json.loads(label_text[start:end])
    return call["name"], call["arguments"]


def validate_call(name: str, arguments: dict[str, Any]) -> BaseModel:
    """Validate a tool call against its action schema (raises on an unknown tool or bad args)."""
    action = {a.__name__: a for a in ACTIONS}[name]
    return action.model_validate(arguments)
