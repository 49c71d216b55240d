"""A policy that answers from a script: deterministic text for the agent loop's tests and demos.

``ScriptedPolicy(script)`` calls ``script(request, call_number)`` for every generation request
and records what it was asked, so a test can drive the loop through any path — tell at once,
retrieve then ask, retrieve until the cap forces a final action, malformed output and retries —
without a model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ark_assets.lib.agent.policy import Generation, GenerationRequest, PolicyIdentity
from ark_assets.lib.synthesis.models import ENTITY_FIELDS

Script = Callable[[GenerationRequest, int], str]


def tool_call(name: str, form: str = "tool_call", **arguments: Any) -> str:
    """A call as a model would write it: tagged, in a fenced block, bare, or JSON only (the
    continuation of a constrained request, after the forced ``<tool_call>``)."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return {
        "tool_call": f"<tool_call>\n{body}\n</tool_call>",
        "fenced_json": f"Here is my action:\n```json\n{body}\n```",
        "bare_json": f"I will answer. {body}",
        "constrained": body,
    }[form]


ENTITY_LISTS: dict[str, list[str]] = {name: [] for name in ENTITY_FIELDS}


def ask(text: str = "多久了？", form: str = "tool_call", **lists: list[str]) -> str:
    arguments = {**ENTITY_LISTS, **lists}
    return tool_call("AskAction", form, reasoning="需要了解病程。", text=text, **arguments)


def tell(text: str = "多喝水，注意休息。", form: str = "tool_call") -> str:
    return tool_call("TellAction", form, reasoning="信息已足够。", text=text)


def retrieve(*queries: str, form: str = "tool_call") -> str:
    return tool_call("RetrievalAction", form, reasoning="查一下知识库。", queries=list(queries))


@dataclass
class ScriptedPolicy:
    script: Script
    identity: PolicyIdentity = field(
        default_factory=lambda: PolicyIdentity("scripted", "scripted", "")
    )
    requests: list[GenerationRequest] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # size of every generate call
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        with self._lock:
            self.batches.append(len(requests))
        out = []
        for request in requests:
            with self._lock:
                self.requests.append(request)
                number = len(self.requests)
            text = self.script(request, number)
            tokens = max(1, len(text) // 4)
            out.append(
                Generation(
                    text=text,
                    token_logprobs=[-0.1] * tokens,
                    prompt_tokens=len(request.prompt) // 4,
                    completion_tokens=tokens,
                )
            )
        return out
