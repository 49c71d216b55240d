"""What the agent loop needs from a student backend: batched generation of rendered prompts.

A backend (in-process transformers + peft, an OpenAI-compatible completions server, or a
scripted double in tests) receives fully rendered prompt strings (the chat template is ours,
applied before the backend sees anything), generates one continuation each, and reports the
text, the log-probability of each generated token and the token counts. A request may carry a
``constraint``: a JSON schema the continuation must match (grammar-constrained decoding); the
loop uses it to force an Ask or Tell after the retrieval cap, and for every step when
``LoopSettings.grammar`` is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# A generated turn ends at the end of its tool call or of the assistant turn.
STOP_STRINGS = ("</tool_call>", "<|im_end|>")


@dataclass(frozen=True)
class Decoding:
    """Decoding settings of one generation; greedy by default (``temperature`` 0)."""

    max_new_tokens: int = 384
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    decoding: Decoding = field(default_factory=Decoding)
    # JSON schema the generated text must match, or None for free text (stopped at STOP_STRINGS).
    constraint: dict[str, Any] | None = None


@dataclass(frozen=True)
class Generation:
    text: str  # the continuation only, without the stop string
    token_logprobs: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # stop | length | error
    error: str | None = None  # set when the backend failed this request (finish_reason error)


@dataclass(frozen=True)
class PolicyIdentity:
    backend: str  # transformers | openai | scripted
    model: str  # base model path or served model name
    adapter: str = ""  # LoRA adapter directory (or served adapter name); "" for the base model

    def as_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "model": self.model, "adapter": self.adapter}


class Policy(Protocol):
    identity: PolicyIdentity

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One generation per request, in order. A request the backend could not serve comes
        back with ``finish_reason="error"``; a backend that cannot serve any raises."""
        ...
