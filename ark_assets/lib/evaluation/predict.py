"""Predictions: our models through the agent loop, and other systems' replies made comparable.

Our systems (the base model, each adapter) answer through ``lib/agent/loop.py`` — the same loop
as the chat and DPO, batched over every sampled item. Imported free-text replies get their
ask/tell from the question detector (the judge, when configured, can override).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from ark_assets.lib.agent.loop import AgentLoop
from ark_assets.lib.evaluation.items import ASK, TELL, Action, EvalItem, Prediction
from ark_assets.lib.synthesis import questions
from ark_assets.lib.synthesis.models import ENTITY_FIELDS


def sample_items(items: Sequence[EvalItem], per_set: int, seed: int) -> list[EvalItem]:
    """At most ``per_set`` items of each test set, seeded, in a stable order (0: all)."""
    by_set: dict[str, list[EvalItem]] = defaultdict(list)
    for item in sorted(items, key=lambda i: (i.test_set, i.item_id)):
        by_set[item.test_set].append(item)
    chosen = []
    for test_set in sorted(by_set):
        group = by_set[test_set]
        if per_set and len(group) > per_set:
            group = random.Random(f"{seed}:{test_set}").sample(group, per_set)
        chosen += sorted(group, key=lambda i: i.item_id)
    return chosen


def agent_predictions(loop: AgentLoop, system: str, items: Sequence[EvalItem]) -> list[Prediction]:
    """Every item through the agent loop in one batched run."""
    runs = loop.run([item.prefix() for item in items])
    predictions = []
    for item, run in zip(items, runs, strict=True):
        final = run.final
        action: Action | None = (
            None if final is None else (ASK if final.name == "AskAction" else TELL)
        )
        entities = (
            {name: list(final.arguments.get(name) or []) for name in ENTITY_FIELDS}
            if final is not None and action == ASK
            else None
        )
        predictions.append(
            Prediction(
                system=system,
                item_id=item.item_id,
                text=str(final.arguments.get("text", "")) if final else None,
                action=action,
                action_source="tool",
                entities=entities,
                failure=run.failure,
                extra={
                    "retrievals": run.retrievals,
                    "retries": run.retries,
                    "forced_final": run.forced_final,
                    "parse_forms": run.forms,
                    "completion_tokens": run.completion_tokens,
                },
            )
        )
    return predictions


def with_detected_action(prediction: Prediction, language: str) -> Prediction:
    """A free-text reply's ask/tell by the offline question detector."""
    if prediction.action is not None or not prediction.text:
        return prediction
    asking = questions.detect(prediction.text, language).is_asking
    return replace(prediction, action=ASK if asking else TELL, action_source="detector")
