"""Fixtures of the Ark loop tests: sample prefixes, an in-memory knowledge base, fake backends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ark_assets.lib.synthesis.loop import prefixes
from ark_assets.lib.synthesis.models import Prefix, TeacherIdentity
from ark_assets.lib.synthesis.teacher import Completion, TeacherRequest, Usage
from ark_assets.testing.dialogues import sample_rows


def sample_prefixes(language: str, dialogues: int) -> list[Prefix]:
    return [p for row in sample_rows(language, dialogues) for p in prefixes(row)]


@dataclass
class ScriptedBackend:
    """A backend answering from a function of (request, call number); counts what it saw."""

    answer: Callable[[TeacherRequest[Any], int], str]
    identity: TeacherIdentity = field(
        default_factory=lambda: TeacherIdentity(backend="openai", model="scripted", note="test")
    )
    max_concurrency: int = 64
    requests: list[TeacherRequest[Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def complete(self, request: TeacherRequest[Any]) -> Completion:
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
        return Completion(self.answer(request, number), Usage(prompt_tokens=7, completion_tokens=3))
