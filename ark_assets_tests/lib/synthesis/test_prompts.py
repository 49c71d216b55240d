"""Prompt templates: present for every stage and language, versioned, fully filled."""

import re

import pytest

from ark_assets.lib.synthesis import prompts
from ark_assets.lib.synthesis.models import (
    AskCheck,
    Entities,
    ReasoningCheck,
    RefinedResult,
    Response,
    RetrievalRequest,
)

_OUTPUT = {
    "request": RetrievalRequest,
    "refine": RefinedResult,
    "check": ReasoningCheck,
    "classify": AskCheck,
    "respond": Response,
    "entities": Entities,
}
_VALUES = {
    "history": "H",
    "results": "R",
    "query": "Q",
    "documents": "D",
    "reply": "Y",
    "path": "P",
    "hint": "I",
    "questions": "U",
}


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("stage", prompts.STAGES)
def test_every_stage_renders_with_its_schema_and_no_placeholder_left(
    stage: str, language: str
) -> None:
    template = prompts.stage_template(stage, language)
    needed = set(re.findall(r"\$(\w+)", template.fields["user"]))
    messages = prompts.messages(
        stage, language, _OUTPUT[stage], **{k: v for k, v in _VALUES.items() if k in needed}
    )
    system, user = messages[0]["content"], messages[1]["content"]
    assert f'"title":"{_OUTPUT[stage].__name__}"' in system
    assert "$" not in user and "$schema" not in system
    assert bool(re.search(r"[\u4e00-\u9fff]", system)) is (language == "zh")
    assert re.fullmatch(rf"ark/{language}/{stage}\.v1#[0-9a-f]{{8}}", template.identity)


def test_versions_name_every_path_stage_and_the_labels() -> None:
    versions = prompts.versions("zh")
    assert set(versions) == {"request", "refine", "check", "classify", "respond", "common"}


def test_a_missing_value_is_an_error_not_a_silent_gap() -> None:
    with pytest.raises(KeyError):
        prompts.messages("classify", "en", AskCheck)
