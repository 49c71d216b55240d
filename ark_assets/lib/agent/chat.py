"""A conversation with the agent, one patient message at a time (``ark chat``, ``ark serve``).

Each patient message becomes a prefix whose history is the conversation so far, with the
agent's own earlier replies as the doctor turns, and goes through the same loop as every other
caller (one row). The turn returned holds what a person wants to see: the retrievals (queries,
documents kept, condensed results), the final action with its reasoning, and the raw text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ark_assets.lib.agent.loop import AgentLoop, AgentRun
from ark_assets.lib.synthesis.models import Prefix, Turn


@dataclass(frozen=True)
class ChatTurn:
    run: AgentRun

    @property
    def reply(self) -> str:
        if self.run.final is None:
            return ""
        return str(self.run.final.arguments.get("text", ""))

    @property
    def action(self) -> str:
        return self.run.final.name if self.run.final else "none"

    @property
    def reasoning(self) -> str:
        return str(self.run.final.arguments.get("reasoning", "")) if self.run.final else ""

    def retrievals(self) -> list[dict[str, Any]]:
        """One entry per RetrievalAction: its queries, kept document ids and refined results."""
        return [
            {"queries": s.queries, "hits": s.hits, "refined": s.refined}
            for s in self.run.steps
            if s.call == "RetrievalAction"
        ]


@dataclass
class ChatSession:
    loop: AgentLoop
    language: str = "zh"
    history: list[Turn] = field(default_factory=list)

    def send(self, patient_message: str) -> ChatTurn:
        prefix = Prefix(
            batch="chat",
            conversation_id="chat",
            medark_key="",
            turn_index=len(self.history),
            language=self.language,
            history=list(self.history),
            patient_message=patient_message,
            doctor_reply="",
        )
        (run,) = self.loop.run([prefix])
        turn = ChatTurn(run)
        self.history.append(Turn(patient=patient_message, doctor=turn.reply or "…"))
        return turn
