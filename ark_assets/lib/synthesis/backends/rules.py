"""The rules teacher: a transparent, deterministic heuristic standing in for an LLM.

It answers every stage from the request's ``context`` without any model:
- request: medical terms of the patient's messages (lexicon, then jieba keywords) not queried
  yet, two terms per templated question, at most two questions; none left → empty request;
- refine: the two sentences of the retrieved answers that share most with the query;
- check: deducible when the retrieved text covers enough of the doctor reply's character
  bigrams (Chinese) or content words (English);
- classify: the question detector (``lib.synthesis.questions``) on the real doctor reply;
- respond: templated reasoning, the reply unchanged, lexicon entities of its questions;
- entities: lexicon terms of the reply's questions, jieba keywords as ``concept`` otherwise.

Expect plumbing-grade data: queries are keyword templates, reasoning is boilerplate, entities
are whatever the small lexicon knows. It exists so the whole pipeline runs offline and
reproducibly (demo, tests); real datasets use an LLM backend. Every record says so in its
``teacher.note``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ark_assets.lib.synthesis import keywords, lexicon, prompts, questions
from ark_assets.lib.synthesis.models import (
    AskCheck,
    Entities,
    ReasoningCheck,
    RefinedResult,
    Response,
    RetrievalRequest,
    TeacherIdentity,
    TeacherOutput,
)
from ark_assets.lib.synthesis.teacher import Completion, TeacherRequest

# Bump whenever a rule changes: it is the cache's "model", so old answers are not reused.
RULES_MODEL = "ark-rules-1"
NOTE = (
    "rules teacher: deterministic heuristics, no language model; exercises the pipeline only, "
    "real datasets use an LLM backend (openai or transformers)"
)
# Share of the doctor reply's units found in the retrieved text for it to count as deducible;
# 0.15 is about the 90th percentile of first-round coverage on the Chinese sample.
DEDUCIBLE_COVERAGE = 0.15
_TERMS_PER_QUERY = 2
_REFINED_SENTENCES = 2
_MAX_SENTENCE_CHARS = 160


class RulesBackend:
    identity = TeacherIdentity(backend="rules", model=RULES_MODEL, note=NOTE)
    # Pure CPU work under the GIL: threads would only add contention.
    max_concurrency = 1

    def complete(self, request: TeacherRequest[Any]) -> Completion:
        answer = _STAGES[request.stage](request.context, request.language)
        return Completion(answer.model_dump_json())


def _request(context: Mapping[str, Any], language: str) -> TeacherOutput:
    wording = prompts.rules_wording(language)
    asked = " ".join(context["asked"])
    messages: Sequence[str] = context["patient_messages"]
    terms: list[str] = []
    for text in [messages[-1], *reversed(messages[:-1])]:  # the latest message first
        terms += [t for t in keywords.keywords(text, language) if t not in terms]
    fresh = [t for t in terms if t not in asked][: _TERMS_PER_QUERY * 2]
    if not fresh:
        return RetrievalRequest(reasoning=wording.fill("request_none"), queries=[])
    join = wording.fields["term_join"]
    groups = [fresh[i : i + _TERMS_PER_QUERY] for i in range(0, len(fresh), _TERMS_PER_QUERY)]
    return RetrievalRequest(
        reasoning=wording.fill("request", terms=join.join(fresh)),
        queries=[wording.fill("query", terms=join.join(group)) for group in groups],
    )


def _refine(context: Mapping[str, Any], language: str) -> TeacherOutput:
    query = str(context["query"])
    wanted = keywords.units(query, language)
    sentences = [
        s[:_MAX_SENTENCE_CHARS]
        for document in context["documents"]
        for s in questions.split_sentences(str(document["answer"]), language)
    ]
    scored = sorted(
        range(len(sentences)),
        key=lambda i: (-len(wanted & keywords.units(sentences[i], language)), i),
    )[:_REFINED_SENTENCES]
    separator = "" if language == "zh" else " "
    text = separator.join(sentences[i] for i in sorted(scored))
    return RefinedResult(refined_result=text or prompts.rules_wording(language).fill("refine_none"))


def _check(context: Mapping[str, Any], language: str) -> TeacherOutput:
    score = keywords.coverage(str(context["reply"]), " ".join(context["retrieved"]), language)
    deducible = score >= DEDUCIBLE_COVERAGE
    reasoning = prompts.rules_wording(language).fill(
        "check_yes" if deducible else "check_no",
        score=f"{score:.2f}",
        threshold=f"{DEDUCIBLE_COVERAGE:.2f}",
    )
    return ReasoningCheck(reasoning=reasoning, deducible=deducible)


def _classify(context: Mapping[str, Any], language: str) -> TeacherOutput:
    verdict = questions.detect(str(context["reply"]), language)
    wording = prompts.rules_wording(language)
    if verdict.is_asking:
        reasoning = wording.fill("classify_ask", question=verdict.questions[0])
    else:
        reasoning = wording.fill("classify_tell")
    return AskCheck(reasoning=reasoning, is_asking=verdict.is_asking)


def _respond(context: Mapping[str, Any], language: str) -> TeacherOutput:
    reply = str(context["reply"])
    wording = prompts.rules_wording(language)
    join = wording.fields["term_join"]
    if context["is_asking"]:
        asked = questions.detect(reply, language).questions or (reply,)
        patient = " ".join(context["patient_messages"])
        terms = join.join(term for _, term in lexicon.match(patient, language))
        reasoning = wording.fill(
            "respond_ask", terms=terms or wording.fill("no_terms"), question=asked[0]
        )
        entities = _asked_entities(" ".join(asked), language)
    else:
        queries = join.join(context["queries"])
        evidence = wording.fill("evidence", queries=queries) if queries else ""
        reasoning = wording.fill("respond_tell", evidence=evidence)
        entities = Entities()
    return Response(
        reasoning=reasoning, is_asking=bool(context["is_asking"]), entities=entities, text=reply
    )


def _entities(context: Mapping[str, Any], language: str) -> TeacherOutput:
    reply = str(context["reply"])
    return _asked_entities(" ".join(questions.detect(reply, language).questions) or reply, language)


def _asked_entities(asked: str, language: str) -> Entities:
    """Lexicon terms of the questions; their keywords as ``concept`` when the lexicon has none."""
    lists: dict[str, list[str]] = {}
    for kind, term in lexicon.match(asked, language):
        lists.setdefault(kind, []).append(term)
    if not lists:
        lists["concept"] = keywords.keywords(asked, language, limit=3)
    return Entities.model_validate(lists)


_STAGES = {
    "request": _request,
    "refine": _refine,
    "check": _check,
    "classify": _classify,
    "respond": _respond,
    "entities": _entities,
}
