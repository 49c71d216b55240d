"""A rule-based question detector: does a doctor reply ask the patient something?

Used by the rules teacher to label replies ask/tell and, for every backend, as an independent
second opinion stored beside the teacher's label (``ArkPath.detector_is_asking``). It reads the
reply sentence by sentence: a sentence asks when it ends in a question mark or carries a strong
interrogative cue, unless it is a closing formula ("any other questions?", "还有其他问题吗？"),
which invites questions rather than asking for information.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*|[。！？!?；;]+")
_EN_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")

# Interrogative words: a question when the sentence has no terminal punctuation (chat style).
_ZH_QUESTION_WORDS = (
    "是否",
    "有没有",
    "有无",
    "是不是",
    "多久",
    "多长时间",
    "几岁",
    "多大了",
    "什么时候",
    "哪里",
    "哪儿",
    "哪些",
)
# Requests for information: asking whatever the punctuation.
_ZH_REQUESTS = ("请问", "请描述", "请告诉", "请说一下", "请说明", "能否告诉", "方便告诉")
_ZH_FINAL_PARTICLES = ("吗", "呢", "么", "嘛")
# Verbs after which 是否 / 有没有 is reported speech ("建议检查是否感染"), not a question.
_ZH_REPORTED = re.compile(
    r"(检查|确认|观察|明确|注意|判断|看看|评估|排除|了解)(一下)?(是否|有没有|有无)"
)
_ZH_CLOSINGS = re.compile(
    r"(还有|有)(其他|别的|什么|任何)?(问题|疑问|需要|不明白)"
    r"|(明白|清楚|了解|懂)了?吗|好吗[？?]?$|可以吗[？?]?$|对吧[？?]?$"
)

_EN_STARTS = re.compile(
    r"^(do|does|did|are|is|was|were|have|has|had|can|could|would|will|shall|should|may|"
    r"how|what|when|where|which|who|whom|whose|why|any)\b",
    re.IGNORECASE,
)
_EN_REQUESTS = re.compile(
    r"^(please\s+)?(tell me|describe|let me know|walk me through|show me)\b", re.IGNORECASE
)
_EN_CLOSINGS = re.compile(
    r"\b(any|other|more|further)\s+(other\s+|more\s+|further\s+)?questions\b"
    r"|\banything else\b|\bdoes that (make sense|sound)\b|\bis that (clear|okay|ok)\b"
    r"|\bsound(s)? good\b|^(okay|ok|alright|all right)\s*\?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    is_asking: bool
    questions: tuple[str, ...]  # the sentences that ask the patient something
    cues: tuple[str, ...]  # why: the cue that made each sentence a question


def split_sentences(text: str, language: str) -> list[str]:
    if language == "zh":
        return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    return [s.strip() for s in _EN_SENTENCE.split(text) if s.strip()]


def detect(text: str, language: str) -> Verdict:
    """Ask (``is_asking``) when at least one sentence of ``text`` is a question to the patient."""
    questions: list[str] = []
    cues: list[str] = []
    for sentence in split_sentences(text, language):
        cue = _zh_cue(sentence) if language == "zh" else _en_cue(sentence)
        if cue:
            questions.append(sentence)
            cues.append(cue)
    return Verdict(bool(questions), tuple(questions), tuple(cues))


def _zh_cue(sentence: str) -> str | None:
    if _ZH_CLOSINGS.search(sentence):
        return None
    if sentence.endswith(("？", "?")):
        return "？"
    body = sentence.rstrip("。！!；;，,…~ ")
    request = next((phrase for phrase in _ZH_REQUESTS if phrase in body), None)
    if request or sentence != body or _ZH_REPORTED.search(body):
        return request
    if body.endswith(_ZH_FINAL_PARTICLES):
        return body[-1]
    return next((word for word in _ZH_QUESTION_WORDS if word in body), None)


def _en_cue(sentence: str) -> str | None:
    if _EN_CLOSINGS.search(sentence):
        return None
    if sentence.rstrip("\"') ").endswith("?"):
        return "?"
    if request := _EN_REQUESTS.search(sentence):
        return request.group(2).lower()
    start = _EN_STARTS.search(sentence)
    if start and not sentence.endswith((".", "!")):
        return start.group(1).lower()
    return None
