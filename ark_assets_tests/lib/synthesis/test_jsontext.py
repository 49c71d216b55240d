"""Tolerant parsing of model answers: what is accepted, and what each rejection says."""

import pytest

from ark_assets.lib.synthesis.jsontext import InvalidOutput, extract_object, parse
from ark_assets.lib.synthesis.models import RetrievalRequest


@pytest.mark.parametrize(
    "text",
    [
        '{"reasoning": "r", "queries": ["q"]}',
        '```json\n{"reasoning": "r", "queries": ["q"]}\n```',
        'Sure! Here it is: {"reasoning": "r", "queries": ["q"]} Hope it helps {',
        '<think>{not json}</think>\n{"reasoning": "r", "queries": ["q"]}',
    ],
)
def test_bare_fenced_and_embedded_objects_are_found(text: str) -> None:
    assert parse(text, RetrievalRequest) == RetrievalRequest(reasoning="r", queries=["q"])


def test_no_object_is_an_invalid_output_quoting_the_reply() -> None:
    with pytest.raises(InvalidOutput, match="no JSON object in the reply: 'I cannot help'"):
        extract_object("I cannot help")


def test_schema_violations_name_the_fields() -> None:
    with pytest.raises(InvalidOutput) as err:
        parse('{"reasoning": "", "queries": ["a", "b", "c"]}', RetrievalRequest)
    assert "RetrievalRequest schema violated" in str(err.value)
    assert "reasoning:" in str(err.value) and "queries:" in str(err.value)


def test_queries_are_stripped_and_deduplicated() -> None:
    request = parse('{"reasoning": "r", "queries": [" q ", "q", ""]}', RetrievalRequest)
    assert request.queries == ["q"]
