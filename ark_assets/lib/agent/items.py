"""What the agent runs on: dialogue prefixes ending in a patient turn, from held-out dialogues."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from ark_assets.lib.synthesis import questions
from ark_assets.lib.synthesis.loop import prefixes
from ark_assets.lib.synthesis.models import Prefix
from ark_assets.lib.training.render import split_of


def heldout_prefixes(
    rows: Iterable[Mapping[str, Any]], heldout_percent: int, limit: int, seed: int
) -> list[Prefix]:
    """Every prefix of the dialogues on the held-out side of SFT's split (by MedArk key, as
    ``sft_records`` splits them), or a seeded sample of ``limit`` of them, in a stable order."""
    held = [
        prefix
        for row in rows
        if split_of(row["medark_key"], heldout_percent) == "heldout"
        for prefix in prefixes(row)
    ]
    held.sort(key=lambda p: (p.conversation_id, p.turn_index))
    if len(held) > limit:
        chosen = sorted(random.Random(seed).sample(range(len(held)), limit))
        held = [held[i] for i in chosen]
    return held


def reference_is_asking(prefix: Prefix) -> bool:
    """Whether the real doctor reply asks (the question detector), for the action mix."""
    return questions.detect(prefix.doctor_reply, prefix.language).is_asking
