"""Tolerant parsing of a model's JSON answer: bare, fenced, or embedded in prose.

Whatever the text, the outcome is a validated object or an ``InvalidOutput`` whose message is
short enough to show back to the model: a runaway answer is refused by its length, JSON nested
past the parser's depth is skipped like any other non-object, and the embedded-object scan
stops after a bounded number of starts.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_SNIPPET = 160
# An answer is at most a few thousand tokens (the teacher's max_tokens); text far past that is
# garbage, and scanning it for embedded objects would cost seconds per attempt.
MAX_ANSWER_CHARS = 200_000
# Embedded-object starts tried: a real answer's object comes early in the text.
_MAX_STARTS = 256
# Schema violations listed in the message (an answer can break thousands of list items).
_MAX_PROBLEMS = 8


class InvalidOutput(ValueError):
    """The teacher's answer is not a valid instance of the requested schema."""


def snippet(text: str) -> str:
    flat = " ".join(text[: _SNIPPET * 8].split())
    return flat if len(flat) <= _SNIPPET and len(text) <= _SNIPPET * 8 else flat[:_SNIPPET] + "…"


def _object(text: str, start: int | None = None) -> dict[str, Any] | None:
    try:
        if start is None:
            value = json.loads(text)
        else:
            value, _ = json.JSONDecoder().raw_decode(text, start)
    except (json.JSONDecodeError, RecursionError):  # not JSON; nested past the parser's depth
        return None
    return value if isinstance(value, dict) else None


def extract_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``: the whole text, a fenced block, or embedded."""
    if len(text) > MAX_ANSWER_CHARS:
        raise InvalidOutput(
            f"the reply is {len(text):,} characters, more than an answer can be "
            f"({MAX_ANSWER_CHARS:,}): {snippet(text)!r}"
        )
    for candidate in [text.strip(), *(m.strip() for m in _FENCE.findall(text))]:
        if (value := _object(candidate)) is not None:
            return value
    for match in itertools.islice(re.finditer(r"\{", text), _MAX_STARTS):
        if (value := _object(text, match.start())) is not None:
            return value
    raise InvalidOutput(f"no JSON object in the reply: {snippet(text)!r}")


def parse(text: str, output: type[T]) -> T:
    """Extract and validate; every failure is an ``InvalidOutput`` saying what was wrong."""
    try:
        return output.model_validate(extract_object(text))
    except ValidationError as err:
        errors = err.errors()
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in errors[:_MAX_PROBLEMS]
        )
        more = f" (and {len(errors) - _MAX_PROBLEMS} more)" if len(errors) > _MAX_PROBLEMS else ""
        raise InvalidOutput(f"{output.__name__} schema violated: {problems}{more}") from err
