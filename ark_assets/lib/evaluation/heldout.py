"""Test items from our own held-out split: every prefix of a held-out dialogue, labelled ask
or tell by its real doctor reply (the question detector), in MedArk's two sets per source."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ark_assets.lib.agent.items import heldout_prefixes, reference_is_asking
from ark_assets.lib.evaluation.items import ASK, TELL, Action, EvalItem, item_id

# Every prefix (the caller samples what a model system runs on).
_ALL = 10**9


def heldout_items(rows: Iterable[Mapping[str, Any]], heldout_percent: int) -> list[EvalItem]:
    """``heldout_ask`` / ``heldout_tell`` items of the held-out side of SFT's split."""
    items = []
    for prefix in heldout_prefixes(rows, heldout_percent, _ALL, seed=0):
        action: Action = ASK if reference_is_asking(prefix) else TELL
        items.append(
            EvalItem(
                item_id=item_id(prefix.history, prefix.patient_message, prefix.doctor_reply),
                test_set=f"heldout_{action}",
                language=prefix.language,
                history=tuple(prefix.history),
                patient_message=prefix.patient_message,
                reference=prefix.doctor_reply,
                reference_action=action,
                medark_key=prefix.medark_key,
                conversation_id=prefix.conversation_id,
            )
        )
    return items
