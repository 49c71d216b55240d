"""The evaluation contract: a test item, and one system's prediction for it.

An item is a dialogue prefix ending in a patient turn, with the real doctor reply as the
reference. Items come from our held-out split or from MedArk's published test files
(``{"instruction", "conversation"}``: the last turn's doctor reply is the reference, earlier
turns the history). ``medark_key`` is ``sha256(str(conversation[0]))``, how MedArk finds the
dialogue's later turns in ``tagged.pkl`` for AUV.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ark_assets.lib.synthesis.models import ENTITY_FIELDS, Prefix, Turn

ASK: Final = "ask"
TELL: Final = "tell"
Action = Literal["ask", "tell"]


@dataclass(frozen=True)
class EvalItem:
    item_id: str  # content digest of (history, patient message, reference): same item, same id
    test_set: str  # e.g. zh_med_ask, non_zh_med_tell, heldout
    language: str  # zh or en
    history: tuple[Turn, ...]
    patient_message: str
    reference: str  # the real doctor reply
    reference_action: Action | None  # from the set's name (*_ask / *_tell), else the detector
    medark_key: str
    instruction: str = ""
    conversation_id: str = ""  # ours, when the item comes from our held-out split

    def prefix(self) -> Prefix:
        """The item as the agent loop takes it."""
        return Prefix(
            batch=self.test_set,
            conversation_id=self.conversation_id or self.item_id,
            medark_key=self.medark_key,
            turn_index=len(self.history),
            language=self.language,
            history=list(self.history),
            patient_message=self.patient_message,
            doctor_reply=self.reference,
        )


def item_id(history: list[Turn] | tuple[Turn, ...], patient: str, reference: str) -> str:
    payload = json.dumps(
        [[[t.patient, t.doctor] for t in history], patient, reference], ensure_ascii=False
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Prediction:
    """What one system answered for one item."""

    system: str  # e.g. "sft_adapter@<fingerprint>", "base_model", "MedRAG (file name)"
    item_id: str
    text: str | None  # the reply to the patient; None when the system gave none (null, failure)
    action: Action | None  # ask or tell, when known
    action_source: str  # tool (our agent / MedArk records), is_asking (MedRAG), detector, judge
    entities: dict[str, list[str]] | None = None  # the 7 lists, when the system gave them
    failure: str | None = None  # why there is no answer
    extra: dict[str, Any] = field(default_factory=dict)


def empty_entities() -> dict[str, list[str]]:
    return {name: [] for name in ENTITY_FIELDS}
