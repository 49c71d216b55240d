"""A tool call out of generated text, in whichever form a small model wrote it.

Trained students emit ``<tool_call>{"name": …, "arguments": …}</tool_call>`` (the Qwen2.5 form
SFT teaches); briefly trained small models often do not emit the tag and write the same JSON in
a fenced code block, or bare. All three are accepted and the form is recorded, so a report can
say how many calls came in the trained form. The **last** call in the text counts (as in
MedArk's inference). The call is validated against the action schemas; anything else is a
``Malformed`` with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from ark_assets.lib.training.render import ACTIONS

TAGGED: Final = "tool_call"
FENCED: Final = "fenced_json"
BARE: Final = "bare_json"
FORMS = (TAGGED, FENCED, BARE)

_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_ACTIONS: dict[str, type[BaseModel]] = {a.__name__: a for a in ACTIONS}
# Nesting this deep is never a tool call; refusing it keeps json.loads off pathological input.
_MAX_TEXT = 20_000


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]
    action: BaseModel  # the validated RetrievalAction, AskAction or TellAction
    form: str  # tool_call | fenced_json | bare_json


@dataclass(frozen=True)
class Malformed:
    reason: str  # no_call | bad_json | unknown_tool | invalid_arguments | not_allowed
    detail: str


def parse_call(text: str, allowed: frozenset[str] | None = None) -> ParsedCall | Malformed:
    """The last tool call in ``text``, validated; ``allowed`` limits the tool names."""
    if len(text) > _MAX_TEXT:
        return Malformed("no_call", f"generation of {len(text)} characters")
    last: Malformed = Malformed("no_call", "no tool call, fenced JSON or JSON object found")
    for form, candidates in (
        (TAGGED, _TAGGED.findall(text)),
        (FENCED, _FENCED.findall(text)),
        (BARE, _bare_objects(text)),
    ):
        for candidate in reversed(candidates):
            result = _call_of(candidate.strip(), form, allowed)
            if isinstance(result, ParsedCall):
                return result
            last = result if last.reason == "no_call" else last
        if candidates:
            return last  # the model wrote this form: do not look for a weaker one
    return last


def _bare_objects(text: str) -> list[str]:
    """Top-level ``{…}`` spans of ``text`` (braces inside JSON strings respected)."""
    spans, depth, start, in_string, escaped = [], 0, -1, False, False
    for i, char in enumerate(text):
        if in_string:
            escaped = not escaped and char == "\\"
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"' and depth:
            in_string = True
        elif char == "{":
            start = i if depth == 0 else start
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _call_of(candidate: str, form: str, allowed: frozenset[str] | None) -> ParsedCall | Malformed:
    try:
        call = json.loads(candidate)
    except (ValueError, RecursionError) as err:
        return Malformed("bad_json", f"{form}: {str(err)[:200]}")
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return Malformed("bad_json", f"{form}: not an object with a name")
    name = call["name"]
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):  # some servers and models double-encode the arguments
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return Malformed("bad_json", f"{form}: arguments are not JSON")
    if name not in _ACTIONS:
        return Malformed("unknown_tool", f"{form}: {name[:80]}")
    if allowed is not None and name not in allowed:
        return Malformed("not_allowed", f"{form}: {name} (allowed: {', '.join(sorted(allowed))})")
    if not isinstance(arguments, dict):
        return Malformed("invalid_arguments", f"{form}: arguments are not an object")
    try:
        action = _ACTIONS[name].model_validate(arguments)
    except ValidationError as err:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in err.errors())
        return Malformed("invalid_arguments", f"{form}: {name}: {fields}")
    return ParsedCall(name, action.model_dump(), action, form)


def tool_call_schema(names: frozenset[str]) -> dict[str, Any]:
    """JSON schema of a ``{"name", "arguments"}`` call to one of ``names`` (for constrained
    decoding: the generated JSON can only be a valid call to an allowed tool)."""
    variants = []
    for name in sorted(names):
        arguments = _ACTIONS[name].model_json_schema()
        arguments.pop("title", None)
        for prop in arguments.get("properties", {}).values():
            prop.pop("title", None)
        arguments["additionalProperties"] = False
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": arguments},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return variants[0] if len(variants) == 1 else {"anyOf": variants}
