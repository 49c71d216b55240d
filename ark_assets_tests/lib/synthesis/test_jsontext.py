"""Tolerant parsing of model answers: what is accepted, and what each rejection says."""

import time

import pytest

from ark_assets.lib.synthesis.jsontext import MAX_ANSWER_CHARS, InvalidOutput, extract_object, parse
from ark_assets.lib.synthesis.models import RetrievalRequest

_VALID = '{"reasoning": "r", "queries": ["q"]}'


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


def test_a_reply_past_the_length_cap_is_refused_without_parsing() -> None:
    text = _VALID + " " * MAX_ANSWER_CHARS
    with pytest.raises(
        InvalidOutput, match=f"{len(text):,} characters, more than an answer can be"
    ):
        extract_object(text)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a":' * 39_000, "{" * 190_000, '{"a": "' + "x" * 190_000],
    ids=["deep-array", "deep-object", "braces", "open-string"],
)
def test_hostile_replies_are_invalid_output_in_bounded_time(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidOutput) as err:
        extract_object(text)
    assert time.monotonic() - started < 2 and len(str(err.value)) < 300


def test_a_flood_of_schema_violations_is_summarised() -> None:
    with pytest.raises(InvalidOutput) as err:
        parse('{"reasoning": "r", "queries": [' + ", ".join(["1"] * 5_000) + "]}", RetrievalRequest)
    assert len(str(err.value)) < 1_000
