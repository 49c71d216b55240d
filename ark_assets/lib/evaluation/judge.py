"""LLM judges of a reply: MedArk's three questions and DISC-MedLLM's four-dimension rubric.

MedArk's evaluation asks an LLM (gpt-4o-mini) whether a free-text reply is a question, whether a
telling reply is informational, whether it hallucinates given the real doctor reply and
BM25-retrieved references, and which entities an asking reply asked about the patient mentions
in the dialogue's later real turns (AUV). DISC-MedLLM scores a reply 1–5 on proactivity,
accuracy, helpfulness and linguistic quality. Each is one structured request through the
synthesis teacher, so the judge gets the teacher's cache, pacing, retry policy and accounting:
a request that still fails after the policy's attempts comes back as a ``Judgement`` with no
verdict and the reason (MedArk retries forever), and ``Judge.failures`` counts them per
question.

The prompts are ours (``prompts/judge/<language>.<version>.toml``). The rules teacher cannot
judge: a ``Judge`` needs an LLM backend (openai or transformers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Final, Generic, TypeVar

from pydantic import Field

from ark_assets.lib.evaluation.items import EvalItem
from ark_assets.lib.knowledge.retrieval import Hit
from ark_assets.lib.synthesis import prompts
from ark_assets.lib.synthesis.models import TeacherOutput, Text
from ark_assets.lib.synthesis.teacher import Teacher, TeacherFailure, TeacherRequest

# Bump together with a new ``prompts/judge/<language>.<version>.toml``.
JUDGE_PROMPT_VERSION: Final = "v1"

QUESTION: Final = "judge_question"
INFORMATIONAL: Final = "judge_informational"
HALLUCINATION: Final = "judge_hallucination"
RUBRIC: Final = "judge_rubric"
MENTION: Final = "judge_mention"
JUDGE_STAGES = (QUESTION, INFORMATIONAL, HALLUCINATION, RUBRIC, MENTION)


class QuestionVerdict(TeacherOutput):
    """Whether a message asks the patient for more information."""

    reasoning: Text = Field(description="The sentence that decides it; concise.")
    is_question: bool = Field(description="True when the message asks the patient something.")


class InformationalVerdict(TeacherOutput):
    """Whether a reply gives the patient useful medical information."""

    reasoning: Text = Field(description="Why the reply is or is not informative; concise.")
    is_informational: bool = Field(description="True when the reply is informative.")


class HallucinationVerdict(TeacherOutput):
    """Whether a reply contains wrong, invented or unfounded medical content."""

    reasoning: Text = Field(description="The faulty claim, or why there is none; concise.")
    hallucinates: bool = Field(description="True when the reply contains such content.")


Score = Annotated[int, Field(ge=1, le=5)]


class RubricScores(TeacherOutput):
    """DISC-MedLLM's rubric: four dimensions, 1 (worst) to 5 (best)."""

    reasoning: Text = Field(description="The grounds for the scores; concise.")
    proactivity: Score = Field(description="Asks for what matters, or offers the next step.")
    accuracy: Score = Field(description="Medical content correct and not misleading.")
    helpfulness: Score = Field(description="Addresses what the patient needs.")
    linguistic_quality: Score = Field(description="Fluent, clear, suitably worded.")


class MentionVerdict(TeacherOutput):
    """Which of the entities a reply asked about the patient talks about in later messages."""

    reasoning: Text = Field(description="Where each mentioned item comes up; concise.")
    mentioned: list[str] = Field(
        default_factory=list,
        description="The listed items the patient talks about, copied exactly as listed; "
        "empty when none.",
    )


V = TypeVar("V", bound=TeacherOutput)


@dataclass(frozen=True)
class Judgement(Generic[V]):
    """A judge's answer: the verdict, or None and why (after the teacher's retry policy)."""

    verdict: V | None
    failure: str | None  # "<error type> after <n> attempts: <message>" when the teacher gave up
    from_cache: bool
    prompt: str  # identity of the prompt template: judge/<language>.<version>#<digest>


class JudgeUnavailable(RuntimeError):
    """The configured teacher cannot judge (the rules backend): configure an LLM teacher."""


class Judge:
    def __init__(self, teacher: Teacher) -> None:
        if teacher.identity.backend == "rules":
            raise JudgeUnavailable(
                "the rules teacher has no language model and cannot judge replies: configure an "
                "LLM teacher (openai or transformers backend) or leave the judged metrics out"
            )
        self.teacher = teacher

    def is_question(self, reply: str, language: str) -> Judgement[QuestionVerdict]:
        """MedArk's ask-or-tell judge of a free-text reply (it sees the reply only)."""
        return self._judge(QUESTION, language, QuestionVerdict, reply=reply)

    def is_informational(self, item: EvalItem, reply: str) -> Judgement[InformationalVerdict]:
        return self._judge(
            INFORMATIONAL, item.language, InformationalVerdict, history=_history(item), reply=reply
        )

    def hallucinates(
        self, item: EvalItem, reply: str, references: Sequence[Hit]
    ) -> Judgement[HallucinationVerdict]:
        """Judged against the real doctor reply and ``references`` (MedArk: BM25, k = 8)."""
        template = _template(item.language)
        documents = prompts.documents(
            [{"question": hit.question, "answer": hit.answer} for hit in references],
            item.language,
        )
        return self._judge(
            HALLUCINATION,
            item.language,
            HallucinationVerdict,
            history=_history(item),
            reply=reply,
            reference=item.reference,
            documents=documents or template.fields["no_documents"],
        )

    def rubric(self, item: EvalItem, reply: str) -> Judgement[RubricScores]:
        return self._judge(RUBRIC, item.language, RubricScores, history=_history(item), reply=reply)

    def mentions(
        self, item: EvalItem, asked: Sequence[str], later: Sequence[str]
    ) -> Judgement[MentionVerdict]:
        """MedArk's AUV judge: which ``asked`` entities the patient mentions in the ``later``
        real patient messages. Its ``mentioned`` may hold anything: ``mentioned_of`` keeps
        only the asked ones."""
        return self._judge(
            MENTION,
            item.language,
            MentionVerdict,
            entities="\n".join(f"- {entity}" for entity in asked),
            later="\n".join(f"{n}. {turn}" for n, turn in enumerate(later, 1)),
        )

    @property
    def failures(self) -> dict[str, int]:
        """Requests per judge question that failed every attempt (from the teacher's stats)."""
        stages = self.teacher.stats.stages
        return {stage: stages[stage].failed if stage in stages else 0 for stage in JUDGE_STAGES}

    def _judge(self, stage: str, language: str, output: type[V], **values: str) -> Judgement[V]:
        template = _template(language)
        name = stage.removeprefix("judge_")
        messages = [
            {
                "role": "system",
                "content": template.fill(f"{name}_system", schema=prompts.schema_text(output)),
            },
            {"role": "user", "content": template.fill(f"{name}_user", **values)},
        ]
        request = TeacherRequest(stage, language, output, messages, dict(values))
        try:
            verdict, from_cache = self.teacher.ask(request)
        except TeacherFailure as failure:
            reason = f"{failure.error_type} after {failure.attempts} attempts: {failure.message}"
            return Judgement(None, reason, False, template.identity)
        return Judgement(verdict, None, from_cache, template.identity)


def mentioned_of(verdict: MentionVerdict, asked: Sequence[str]) -> list[str]:
    """The asked entities the verdict names (matched case- and space-insensitively; a name the
    reply never asked is ignored, so the share stays in [0, 1])."""
    named = {name.strip().casefold() for name in verdict.mentioned}
    return [entity for entity in asked if entity.strip().casefold() in named]


def _template(language: str) -> prompts.Template:
    return prompts.load(f"judge/{language}", JUDGE_PROMPT_VERSION)


def _history(item: EvalItem) -> str:
    """The dialogue up to the patient's message, as ``患者：…`` / ``医生：…`` lines."""
    return prompts.dialogue(item.prefix())
