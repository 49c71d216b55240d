"""Tolerant parsing of a model's JSON answer: bare, fenced, or embedded in prose."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_SNIPPET = 160


class InvalidOutput(ValueError):
    """The teacher's answer is not a valid instance of the requested schema."""


def snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "…"


def extract_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``: the whole text, a fenced block, or embedded."""
    candidates = [text.strip(), *(m.strip() for m in _FENCE.findall(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise InvalidOutput(f"no JSON object in the reply: {snippet(text)!r}")


def parse(text: str, output: type[T]) -> T:
    """Extract and validate; every failure is an ``InvalidOutput`` saying what was wrong."""
    try:
        return output.model_validate(extract_object(text))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()
        )
        raise InvalidOutput(f"{output.__name__} schema violated: {problems}") from err
