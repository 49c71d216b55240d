"""SFT records: Ark paths rendered into token examples, split by conversation, length-checked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from ark_assets.lib.synthesis.models import ENTITY_FIELDS, Entities
from ark_assets.lib.synthesis.tables import path_from_row
from ark_assets.lib.tables import Column, frame
from ark_assets.lib.training.render import examples_for, messages_for, render_prompt, split_of

SFT_RECORDS = (
    Column("batch", pl.Utf8, "Dialogue batch the path came from."),
    Column("conversation_id", pl.Utf8, "tagged_dialogues.conversation_id."),
    Column("medark_key", pl.Utf8, "MedArk key; decides the split."),
    Column("turn_index", pl.Int64, "Turn whose doctor reply the path explains."),
    Column("step", pl.Int64, "Assistant turn of the path this example ends with (0-based)."),
    Column("action", pl.Utf8, "RetrievalAction, AskAction or TellAction."),
    Column("split", pl.Utf8, "train or heldout (held-out feeds DPO and evaluation)."),
    Column("n_tokens", pl.Int64, "Tokens in the example."),
    Column("prompt_tokens", pl.Int64, "Tokens before the labelled assistant turn."),
    Column("label_tokens", pl.Int64, "Tokens that carry loss (the assistant turn)."),
    Column("input_ids", pl.List(pl.Int64), "Token ids of the example."),
    Column("label_text", pl.Utf8, "The labelled assistant turn as rendered."),
    Column("messages_json", pl.Utf8, "The chat up to and including that assistant turn."),
    Column("prompt_version", pl.Utf8, "Rendering prompt used (prompts/sft/…)."),
)

SFT_QUARANTINE = (
    Column("batch", pl.Utf8, "Dialogue batch the path came from."),
    Column("conversation_id", pl.Utf8, "tagged_dialogues.conversation_id."),
    Column("turn_index", pl.Int64, "Turn whose doctor reply the path explains."),
    Column("step", pl.Int64, "Assistant turn of the path (0-based)."),
    Column("rule", pl.Utf8, "over_length."),
    Column("message", pl.Utf8, "Why the example was not kept."),
    Column("n_tokens", pl.Int64, "Tokens in the example."),
)


@dataclass(frozen=True)
class RecordSettings:
    max_length: int = 2048  # MedArk's limit; longer examples are quarantined, never truncated
    heldout_percent: int = 10


def _entities(row: dict[str, Any] | None) -> Entities | None:
    return Entities(**{name: row[name] for name in ENTITY_FIELDS}) if row else None


def build_records(
    paths: pl.DataFrame, entities: pl.DataFrame, tokenizer: Any, settings: RecordSettings
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every assistant turn of every path as one example, or one quarantined row."""
    regenerated = {
        (row["conversation_id"], row["turn_index"]): row for row in entities.iter_rows(named=True)
    }
    kept: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    for row in paths.sort("conversation_id", "turn_index").iter_rows(named=True):
        path = path_from_row(row)
        messages = messages_for(
            path, _entities(regenerated.get((row["conversation_id"], row["turn_index"])))
        )
        where = {
            "batch": path.batch,
            "conversation_id": path.conversation_id,
            "turn_index": path.turn_index,
        }
        for example in examples_for(messages, tokenizer):
            if example.n_tokens > settings.max_length:
                quarantined.append(
                    {
                        **where,
                        "step": example.step,
                        "rule": "over_length",
                        "message": f"{example.n_tokens} tokens > max_length {settings.max_length}",
                        "n_tokens": example.n_tokens,
                    }
                )
                continue
            kept.append(
                {
                    **where,
                    "medark_key": path.medark_key,
                    "step": example.step,
                    "action": example.action,
                    "split": split_of(path.medark_key, settings.heldout_percent),
                    "n_tokens": example.n_tokens,
                    "prompt_tokens": example.prompt_tokens,
                    "label_tokens": example.n_tokens - example.prompt_tokens,
                    "input_ids": example.input_ids,
                    "label_text": example.label_text,
                    "messages_json": json.dumps(
                        _through_step(messages, example.step), ensure_ascii=False
                    ),
                    "prompt_version": render_prompt(path.language).version,
                }
            )
    return frame(kept, SFT_RECORDS), frame(quarantined, SFT_QUARANTINE)


def _through_step(messages: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    return messages[: assistant[step] + 1]


def role_order_valid(messages: list[dict[str, Any]]) -> bool:
    """system, user, then (assistant RetrievalAction, tool)*, then one final assistant turn."""
    roles = [m["role"] for m in messages]
    if roles[:2] != ["system", "user"] or roles[-1] != "assistant":
        return False
    middle = roles[2:-1]
    return middle == ["assistant", "tool"] * (len(middle) // 2) and len(middle) % 2 == 0


def record_counts(
    paths: pl.DataFrame, records: pl.DataFrame, quarantined: pl.DataFrame
) -> dict[str, int]:
    """What a materialization of the SFT records reports: paths in, examples and tokens out."""
    return {
        "paths": paths.height,
        "examples": records.height,
        "quarantined": quarantined.height,
        "tokens": int(records["n_tokens"].sum() or 0),
        "label_tokens": int(records["label_tokens"].sum() or 0),
        "train_examples": records.filter(pl.col("split") == "train").height,
    }
