"""The agent loop, batched: every prefix of a batch advances together, one generate per step.

Each row starts as the chat SFT trains on (``render.dialogue_messages``: system + tools, the
instruction and the dialogue so far). At every step the rows still running are rendered with the
same chat template plus the generation prompt and sent to the policy **in one batch**; each
generation is parsed (``parse.parse_call``):

- ``RetrievalAction``: its queries (at most two) run against the knowledge base (k=2, MedArk's
  shared-character filter), the teacher condenses each query's hits (the refine stage, cached),
  and the call plus a tool turn in SFT's JSON shape are appended; the row generates again.
- ``AskAction`` / ``TellAction``: the row ends with that final action and the log-probabilities
  of its tokens.
- anything malformed: the step is retried from the same clean chat, sampled
  (``retry_temperature``), at most ``max_retries`` times; then the row ends as a failure with
  the reason. No row can loop for ever (MedArk's inference can).

After ``max_retrievals`` retrieval calls the next step is **constrained** to Ask or Tell: the
prompt gets the opening ``<tool_call>`` and the policy must generate JSON matching the schema of
an Ask or Tell call (grammar-constrained decoding, ``policy.GenerationRequest.constraint``).
``LoopSettings.grammar`` constrains every step the same way (to all three tools).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ark_assets.lib.agent.parse import Malformed, ParsedCall, parse_call, tool_call_schema
from ark_assets.lib.agent.policy import Decoding, Generation, GenerationRequest, Policy
from ark_assets.lib.knowledge.retrieval import Retriever
from ark_assets.lib.synthesis.loop import kept_hits, parallel_map, refine
from ark_assets.lib.synthesis.models import MAX_QUERIES, HitRecord, Prefix
from ark_assets.lib.synthesis.teacher import Teacher, TeacherFailure
from ark_assets.lib.training.render import (
    Messages,
    RetrievalAction,
    call_message,
    dialogue_messages,
    prompt_text,
    tool_response,
)

ALL_TOOLS = frozenset({"RetrievalAction", "AskAction", "TellAction"})
FINAL_TOOLS = frozenset({"AskAction", "TellAction"})
CALL_OPENING = "<tool_call>\n"
CALL_CLOSING = "\n</tool_call>"
OK = "ok"
FAILED = "failed"


@dataclass(frozen=True)
class LoopSettings:
    """How the agent runs; every default has MedArk's value or says why not."""

    # MedArk passes 4 to a parameter it never reads (no cap in practice); 4 is enforced here.
    max_retrievals: int = 4
    # MedArk retries a malformed call up to 5 times; greedy decoding repeats itself, so retries
    # sample, and two are enough to tell a format problem from bad luck.
    max_retries: int = 2
    retry_temperature: float = 0.7
    k: int = 2  # knowledge-base hits per query (MedArk: 2)
    min_shared_chars: int = 3  # MedArk's filter on hits
    grammar: bool = False  # constrain every step's tool call, not only the forced final one
    decoding: Decoding = field(default_factory=Decoding)
    # Rows per generate call: the batch is what makes throughput; memory bounds it.
    batch_size: int = 32

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_retrievals": self.max_retrievals,
            "max_retries": self.max_retries,
            "retry_temperature": self.retry_temperature,
            "k": self.k,
            "min_shared_chars": self.min_shared_chars,
            "grammar": self.grammar,
            "decoding": self.decoding.as_dict(),
            "batch_size": self.batch_size,
        }


@dataclass
class Step:
    """One generation of one row, and what the loop did with it."""

    step: int  # 0-based index of the assistant turn this generation is for
    attempt: int  # 0 first try, 1.. retries
    raw_text: str
    constrained: bool
    form: str | None = None
    call: str | None = None
    arguments: dict[str, Any] | None = None
    malformed: str | None = None
    queries: list[str] = field(default_factory=list)
    hits: list[list[str]] = field(default_factory=list)  # doc ids kept, per query
    refined: list[str | None] = field(default_factory=list)  # None: nothing passed the filter
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class AgentRun:
    """A prefix through the loop: its steps, and its final action or failure."""

    prefix: Prefix
    messages: Messages
    steps: list[Step] = field(default_factory=list)
    status: str = "running"  # running | ok | failed
    failure: str | None = None
    final: ParsedCall | None = None
    final_logprobs: list[float] = field(default_factory=list)
    retrievals: int = 0
    retries: int = 0
    attempt: int = 0
    forced_final: bool = False
    final_only: bool = False  # the chat was given (``AgentLoop.final_from``): Ask or Tell now
    seconds: float = 0.0
    pending: RetrievalAction | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def forms(self) -> list[str]:
        return [s.form for s in self.steps if s.form]


class AgentLoop:
    def __init__(
        self,
        policy: Policy,
        tokenizer: Any,
        retriever: Retriever,
        teacher: Teacher,
        settings: LoopSettings = LoopSettings(),
        on_step: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self.policy = policy
        self.tokenizer = tokenizer
        self.retriever = retriever
        self.teacher = teacher
        self.settings = settings
        self.on_step = on_step  # (step, rows running, rows done): progress for long runs

    def run(self, prefixes: Sequence[Prefix]) -> list[AgentRun]:
        """Every prefix to its final action or failure, in input order."""
        runs = [
            AgentRun(p, dialogue_messages(p.language, p.history, p.patient_message))
            for p in prefixes
        ]
        step = 0
        while active := [r for r in runs if r.running]:
            self._generate(active)
            self._retrieve([r for r in active if r.pending is not None])
            step += 1
            if self.on_step:
                self.on_step(step, len([r for r in runs if r.running]), len(runs))
        return runs

    def final_from(self, prefixes: Sequence[Prefix], chats: Sequence[Messages]) -> list[AgentRun]:
        """Each prefix's final action from a given chat (e.g. with the teacher's retrieval turns
        in it, as DPO's prompt): one step, constrained to Ask or Tell, retried like any step."""
        runs = [
            AgentRun(p, [dict(m) for m in chat], final_only=True)
            for p, chat in zip(prefixes, chats, strict=True)
        ]
        self.continue_runs(runs)
        return runs

    def continue_runs(self, runs: Sequence[AgentRun]) -> None:
        """Advance runs already started (the chat appends a patient turn and continues)."""
        step = 0
        while active := [r for r in runs if r.running]:
            self._generate(active)
            self._retrieve([r for r in active if r.pending is not None])
            step += 1
            if self.on_step:
                self.on_step(step, len([r for r in runs if r.running]), len(runs))

    def _generate(self, active: list[AgentRun]) -> None:
        requests = [self._request(run) for run in active]
        size = max(1, self.settings.batch_size)
        for start in range(0, len(active), size):
            chunk = active[start : start + size]
            started = time.perf_counter()
            generations = self.policy.generate([r for r, _ in requests[start : start + size]])
            elapsed = time.perf_counter() - started
            for run, generation, (_, constrained) in zip(
                chunk, generations, requests[start : start + size], strict=True
            ):
                run.seconds += elapsed
                self._advance(run, generation, constrained)

    def _forced(self, run: AgentRun) -> bool:
        return run.final_only or run.retrievals >= self.settings.max_retrievals

    def _request(self, run: AgentRun) -> tuple[GenerationRequest, bool]:
        forced = self._forced(run)
        allowed = FINAL_TOOLS if forced else ALL_TOOLS
        constrained = forced or self.settings.grammar
        prompt = prompt_text(run.messages, self.tokenizer)
        decoding = self.settings.decoding
        if run.attempt:
            decoding = replace(
                decoding,
                temperature=self.settings.retry_temperature,
                seed=decoding.seed + run.attempt,
            )
        if not constrained:
            return GenerationRequest(prompt, decoding), False
        schema = tool_call_schema(allowed)
        return GenerationRequest(prompt + CALL_OPENING, decoding, schema), True

    def _advance(self, run: AgentRun, generation: Generation, constrained: bool) -> None:
        forced = self._forced(run)
        allowed = FINAL_TOOLS if forced else ALL_TOOLS
        text = CALL_OPENING + generation.text + CALL_CLOSING if constrained else generation.text
        record = Step(
            step=len([s for s in run.steps if s.call]),
            attempt=run.attempt,
            raw_text=text,
            constrained=constrained,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
        )
        run.steps.append(record)
        parsed: ParsedCall | Malformed = (
            Malformed("backend_error", generation.error or "")
            if generation.finish_reason == "error"
            else parse_call(text, allowed)
        )
        if isinstance(parsed, Malformed):
            record.malformed = f"{parsed.reason}: {parsed.detail}"
            run.attempt += 1
            run.retries += 1
            if run.attempt > self.settings.max_retries:
                run.status, run.failure = (
                    FAILED,
                    f"malformed after {run.attempt} tries: {record.malformed}",
                )
            return
        run.attempt = 0
        record.form, record.call, record.arguments = parsed.form, parsed.name, parsed.arguments
        if isinstance(parsed.action, RetrievalAction):
            run.pending = parsed.action
            return
        run.final, run.final_logprobs = parsed, list(generation.token_logprobs)
        run.forced_final = forced
        run.status = OK
        run.messages.append(call_message(parsed.action))

    def _retrieve(self, runs: list[AgentRun]) -> None:
        """Search and refine every pending RetrievalAction (teacher calls run concurrently)."""
        jobs = [(run, query) for run in runs for query in _queries(run)]
        results = parallel_map(self._search, jobs, self.teacher.concurrency)
        by_run: dict[int, list[tuple[str, list[HitRecord], str | None] | str]] = {}
        for (run, _), result in zip(jobs, results, strict=True):
            by_run.setdefault(id(run), []).append(result)
        for run in runs:
            action, run.pending = run.pending, None
            assert action is not None
            answers = by_run.get(id(run), [])
            errors = [a for a in answers if isinstance(a, str)]
            if errors:
                run.status, run.failure = FAILED, errors[0]
                continue
            found = [a for a in answers if not isinstance(a, str)]
            record = run.steps[-1]
            record.queries = [q for q, _, _ in found]
            record.hits = [[h.doc_id for h in hits] for _, hits, _ in found]
            record.refined = [refined for _, _, refined in found]
            run.messages.append(call_message(action))
            run.messages.append(tool_response(run.prefix.language, [(q, r) for q, _, r in found]))
            run.retrievals += 1

    def _search(self, job: tuple[AgentRun, str]) -> tuple[str, list[HitRecord], str | None] | str:
        run, query = job
        try:
            found = self.retriever.search(query, k=self.settings.k)
        except Exception as err:  # a KB error fails this row (recorded); the batch goes on
            return f"retrieval: {type(err).__name__}: {err}"
        hits = kept_hits(query, found, self.settings.min_shared_chars)
        if not hits:
            return query, [], None
        try:
            refined = refine(self.teacher, run.prefix, query, hits)
        except TeacherFailure as err:
            return f"refine: {err.error_type}: {err.message}"
        return query, hits, refined.refined_result


def _queries(run: AgentRun) -> list[str]:
    assert run.pending is not None
    return list(dict.fromkeys(q for q in run.pending.queries if q.strip()))[:MAX_QUERIES]
