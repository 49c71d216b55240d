"""Versioned prompt templates (``ark_assets/prompts``) and the text they are filled with.

A template is a TOML file ``<name>.<version>.toml`` with ``$placeholder`` fields; its identity
``<name>.<version>#<sha256 prefix>`` is stored in every record made with it. Templates are never
edited in place: a change is a new version file and a bump here.
"""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel

from ark_assets.lib.synthesis.models import (
    Prefix,
    QueryResult,
    ReasoningCheck,
    RetrievalRequest,
    RetrievalRound,
)

STAGES = ("request", "refine", "check", "classify", "respond", "entities")
PATH_STAGES = STAGES[:-1]
# The version in use per template; bump together with a new ``<name>.<version>.toml`` file.
PROMPT_VERSIONS: Mapping[str, str] = {**dict.fromkeys(STAGES, "v1"), "common": "v1", "rules": "v1"}


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    fields: Mapping[str, str]
    digest: str

    @property
    def identity(self) -> str:
        return f"{self.name}.{self.version}#{self.digest[:8]}"

    def fill(self, key: str, **values: object) -> str:
        return string.Template(self.fields[key]).substitute({k: str(v) for k, v in values.items()})


@cache
def load(name: str, version: str) -> Template:
    """Template ``prompts/<name>.<version>.toml`` from the installed package."""
    data = resources.files("ark_assets").joinpath("prompts", f"{name}.{version}.toml").read_bytes()
    fields = tomllib.loads(data.decode())
    if fields.get("version") != version:
        raise ValueError(f"prompts/{name}.{version}.toml declares version {fields.get('version')}")
    text = {k: v for k, v in fields.items() if isinstance(v, str)}
    return Template(name, version, text, hashlib.sha256(data).hexdigest())


def stage_template(stage: str, language: str) -> Template:
    return load(f"ark/{language}/{stage}", PROMPT_VERSIONS[stage])


def labels(language: str) -> Template:
    return load(f"ark/{language}/common", PROMPT_VERSIONS["common"])


def rules_wording(language: str) -> Template:
    return load(f"rules/{language}", PROMPT_VERSIONS["rules"])


def versions(language: str, stages: Sequence[str] = PATH_STAGES) -> dict[str, str]:
    """Identity of every template a record of ``stages`` depends on."""
    return {
        **{stage: stage_template(stage, language).identity for stage in stages},
        "common": labels(language).identity,
    }


@cache
def output_schema(output: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a teacher output (computed once per class: pydantic is slow at it)."""
    return output.model_json_schema()


@cache
def schema_text(output: type[BaseModel]) -> str:
    return json.dumps(output_schema(output), ensure_ascii=False, separators=(",", ":"))


def messages(
    stage: str, language: str, output: type[BaseModel], **values: object
) -> list[dict[str, str]]:
    """System + user messages of ``stage``; the system message carries the output schema."""
    template = stage_template(stage, language)
    return [
        {"role": "system", "content": template.fill("system", schema=schema_text(output))},
        {"role": "user", "content": template.fill("user", **values)},
    ]


def repair_message(language: str, error: str) -> str:
    return labels(language).fill("repair", error=error)


def dialogue(prefix: Prefix) -> str:
    """The history as ``患者：…`` / ``医生：…`` lines, ending with the patient's message."""
    words = labels(prefix.language).fields
    lines: list[str] = []
    for turn in prefix.history:
        lines.append(f"{words['patient']}{words['colon']}{turn.patient}")
        lines.append(f"{words['doctor']}{words['colon']}{turn.doctor}")
    lines.append(f"{words['patient']}{words['colon']}{prefix.patient_message}")
    return "\n".join(lines)


def results(rounds: Sequence[RetrievalRound], language: str) -> str:
    """Earlier queries and what they found, for the next retrieval request."""
    words = labels(language).fields
    return _result_lines([q for r in rounds for q in r.results], words) or words["none"]


def _result_lines(found: Sequence[QueryResult], words: Mapping[str, str]) -> str:
    return "\n".join(
        f"- {q.query}{words['colon']}"
        f"{q.refined.refined_result if q.refined else words['no_document']}"
        for q in found
    )


def path(
    rounds: Sequence[RetrievalRound],
    language: str,
    pending: tuple[RetrievalRequest, Sequence[QueryResult]] | None = None,
) -> str:
    """The retrieval rounds so far (reasoning, queries, results, checks), then the ``pending``
    round, whose check is being asked for."""
    template = labels(language)
    words = template.fields
    steps: list[tuple[RetrievalRequest, Sequence[QueryResult], ReasoningCheck | None]] = [
        (r.request, r.results, r.check) for r in rounds
    ]
    if pending is not None:
        steps.append((*pending, None))
    blocks: list[str] = []
    for n, (request, found, check) in enumerate(steps, start=1):
        lines = [
            template.fill("round", n=n),
            f"{words['reasoning']}{words['colon']}{request.reasoning}",
            f"{words['queries']}{words['colon']}{words['separator'].join(request.queries)}",
            _result_lines(found, words),
        ]
        if check is not None:
            verdict = words["check_yes"] if check.deducible else words["check_no"]
            lines.append(f"{verdict}{words['colon']}{check.reasoning}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) or words["none"]


def documents(hits: Sequence[Mapping[str, str]], language: str) -> str:
    template = labels(language)
    return "\n\n".join(
        template.fill("document", question=h["question"], answer=h["answer"]) for h in hits
    )
