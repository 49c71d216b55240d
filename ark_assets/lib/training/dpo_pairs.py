"""DPO preference pairs: the doctor's real reply as the chosen action, the SFT agent's as the
rejected one, both answering the same prompt.

A pair starts from an Ark path of a **held-out** conversation (the first pass of synthesis, with
the teacher's retrieval rounds). Its prompt is the SFT chat of that path up to the final action:
system + tools, the instruction and the dialogue, and the teacher's retrieval calls with their
tool responses (``prompt_messages``). Then:

- **chosen** (``chosen_action``): the Ask or Tell call reproducing the real doctor reply, with the
  teacher's reasoning for that reply and, for an ask, the seven entity lists the entity stage
  regenerated for it — the same call SFT trains on as the path's last step;
- **rejected**: the SFT adapter's own final action, generated from exactly that prompt
  (``forced_prefix``, the default), or — MedArk's way — the action it reached after its own
  retrievals from the bare dialogue (``own_path``; the pair's prompt is still the teacher's, so
  chosen and rejected then answer different contexts: docs/training.md).

``build_triples`` renders both completions with the SFT renderer (byte for byte the training
format) and applies MedArk's filters as **counted drop reasons**, one row per dropped pair in
``DPO_DROPS``: a final action that failed, reasoning under 3 characters or containing a tool-call
tag, an ask without entities, chosen equal to rejected, a pair type left out by ``pair_types``,
and pairs longer than ``max_length`` tokens. Nothing is dropped silently:
pairs in = triples + drops.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl
from pydantic import BaseModel

from ark_assets.lib.synthesis.models import ENTITY_FIELDS, ArkPath, Entities
from ark_assets.lib.tables import BATCH, MEDARK_KEY, Column, frame
from ark_assets.lib.training.render import (
    AskAction,
    Messages,
    TellAction,
    call_message,
    completion,
    final_action,
    messages_for,
    parse_tool_call,
    render_prompt,
    validate_call,
)

if TYPE_CHECKING:
    from ark_assets.lib.agent.loop import AgentRun

PairTypes = Literal["same", "different", "all"]
RejectionMode = Literal["forced_prefix", "own_path"]
SAME: Final = "same"
DIFFERENT: Final = "different"
MIN_REASONING_CHARS: Final = 3  # MedArk's filter
TOOL_TAG: Final = "<tool_call>"

_CONVERSATION = Column("conversation_id", pl.Utf8, "tagged_dialogues.conversation_id.")
_TURN = Column("turn_index", pl.Int64, "Turn whose doctor reply is the chosen action.")
_ACTION = "AskAction or TellAction."

DPO_CHOSEN = (
    BATCH,
    _CONVERSATION,
    MEDARK_KEY,
    _TURN,
    Column("action", pl.Utf8, _ACTION),
    Column("arguments_json", pl.Utf8, "The call's arguments: reasoning, text (+ 7 lists)."),
    Column("entities_source", pl.Utf8, "ark_entities (regenerated) or response (the teacher's)."),
)

DPO_REJECTIONS = (
    BATCH,
    _CONVERSATION,
    MEDARK_KEY,
    _TURN,
    Column("mode", pl.Utf8, "forced_prefix (the pair's prompt) or own_path (MedArk's)."),
    Column("status", pl.Utf8, "ok or failed."),
    Column("failure", pl.Utf8, "Why there is no final action (failed rows)."),
    Column("action", pl.Utf8, _ACTION + " Null when failed."),
    Column("arguments_json", pl.Utf8, "The call's arguments; null when failed."),
    Column("raw_text", pl.Utf8, "The last generation as the policy wrote it."),
    Column("retrievals", pl.Int64, "Retrieval calls the policy made itself (own_path)."),
    Column("attempts", pl.Int64, "Generations made (retries included)."),
    Column("policy_json", pl.Utf8, "Policy identity: backend, model, adapter."),
)

DPO_TRIPLES = (
    BATCH,
    _CONVERSATION,
    MEDARK_KEY,
    _TURN,
    Column("language", pl.Utf8, "zh or en."),
    Column("pair_type", pl.Utf8, "same (both ask or both tell) or different."),
    Column("chosen_action", pl.Utf8, _ACTION),
    Column("rejected_action", pl.Utf8, _ACTION),
    Column("rejection_mode", pl.Utf8, "forced_prefix or own_path."),
    Column("prompt", pl.Utf8, "The chat through the generation prompt, as SFT renders it."),
    Column("chosen", pl.Utf8, "The chosen tool call through <|im_end|>."),
    Column("rejected", pl.Utf8, "The rejected tool call through <|im_end|>."),
    Column("prompt_tokens", pl.Int64, "Tokens of the prompt."),
    Column("chosen_tokens", pl.Int64, "Tokens of the chosen completion."),
    Column("rejected_tokens", pl.Int64, "Tokens of the rejected completion."),
    Column("messages_json", pl.Utf8, "The prompt's messages, then chosen, then rejected."),
    Column("prompt_version", pl.Utf8, "Rendering prompt used (prompts/sft/…)."),
)

DPO_DROPS = (
    BATCH,
    _CONVERSATION,
    _TURN,
    Column("rule", pl.Utf8, "Why the pair was not kept (docs/training.md lists them)."),
    Column("message", pl.Utf8, "The detail."),
)

DROP_RULES: dict[str, str] = {
    "not_run": "dpo_rejections has no row for the path (left out by max_paths, or not run yet)",
    "rejection_failed": "the SFT agent gave no valid final action (failure rows of dpo_rejections)",
    "no_chosen": "no chosen action for the path",
    "chosen_reasoning_short": f"the chosen reasoning is under {MIN_REASONING_CHARS} characters",
    "rejected_reasoning_short": f"the rejected reasoning is under {MIN_REASONING_CHARS} characters",
    "chosen_reasoning_tool_tag": "the chosen reasoning contains a tool-call tag",
    "rejected_reasoning_tool_tag": "the rejected reasoning contains a tool-call tag",
    "chosen_ask_without_entities": "the chosen ask names none of the seven entity lists",
    "rejected_ask_without_entities": "the rejected ask names none of the seven entity lists",
    "identical": "the agent's action is the chosen one: nothing to prefer",
    "pair_type_excluded": "the pair's type (same or different action) is left out by pair_types",
    "over_length": "prompt plus a completion is longer than max_length tokens",
}


@dataclass(frozen=True)
class TripleSettings:
    pair_types: PairTypes = "all"
    max_length: int = 2048  # tokens of prompt + the longer completion (trl's max_length)


Action = AskAction | TellAction


def prompt_messages(path: ArkPath) -> Messages:
    """The pair's prompt: the path's SFT chat without its final action."""
    return messages_for(path)[:-1]


def chosen_action(path: ArkPath, entities: Entities | None) -> Action:
    """The real doctor reply as the final call (SFT's last step of the path)."""
    return final_action(path, entities)


def chosen_row(path: ArkPath, entities: Entities | None) -> dict[str, Any]:
    action = chosen_action(path, entities)
    return {
        "batch": path.batch,
        "conversation_id": path.conversation_id,
        "medark_key": path.medark_key,
        "turn_index": path.turn_index,
        "action": type(action).__name__,
        "arguments_json": action.model_dump_json(),
        "entities_source": "ark_entities" if entities is not None else "response",
    }


def rejections_frame(
    runs: Sequence[AgentRun], mode: RejectionMode, policy: Mapping[str, Any]
) -> pl.DataFrame:
    """One ``DPO_REJECTIONS`` row per agent run: its final action, or why there is none."""
    rows = []
    for run in runs:
        prefix, final = run.prefix, run.final
        rows.append(
            {
                "batch": prefix.batch,
                "conversation_id": prefix.conversation_id,
                "medark_key": prefix.medark_key,
                "turn_index": prefix.turn_index,
                "mode": mode,
                "status": run.status,
                "failure": run.failure,
                "action": final.name if final else None,
                "arguments_json": final.action.model_dump_json() if final else None,
                "raw_text": run.steps[-1].raw_text if run.steps else None,
                "retrievals": run.retrievals,
                "attempts": len(run.steps),
                "policy_json": json.dumps(dict(policy), ensure_ascii=False, sort_keys=True),
            }
        )
    return frame(rows, DPO_REJECTIONS)


def action_of(name: str | None, arguments_json: str | None) -> Action | None:
    """The call stored in a chosen or rejection row (None: none, or not a final action)."""
    if not name or arguments_json is None:
        return None
    action = validate_call(name, json.loads(arguments_json))
    return action if isinstance(action, AskAction | TellAction) else None


def _reasoning_rule(side: str, action: BaseModel) -> str | None:
    reasoning = str(getattr(action, "reasoning", ""))
    if len(reasoning.strip()) < MIN_REASONING_CHARS:
        return f"{side}_reasoning_short"
    if TOOL_TAG in reasoning or "</tool_call>" in reasoning:
        return f"{side}_reasoning_tool_tag"
    if isinstance(action, AskAction) and not any(getattr(action, f) for f in ENTITY_FIELDS):
        return f"{side}_ask_without_entities"
    return None


def pair_type(chosen: Action, rejected: Action) -> str:
    return SAME if type(chosen) is type(rejected) else DIFFERENT


def _drop(path: ArkPath, rule: str, message: str) -> dict[str, Any]:
    return {"batch": path.batch, "conversation_id": path.conversation_id,
            "turn_index": path.turn_index, "rule": rule, "message": message}  # fmt: skip


@dataclass(frozen=True)
class PairInput:
    """One held-out path with its chosen row and its rejection row (either may be missing)."""

    path: ArkPath
    chosen: Mapping[str, Any] | None
    rejection: Mapping[str, Any] | None


def _rejected(pair: PairInput) -> tuple[Action | None, str]:
    row = pair.rejection
    if row is None or row["status"] != "ok":
        return None, (row or {}).get("failure") or "the agent gave no final action"
    try:
        action = action_of(row["action"], row["arguments_json"])
    except ValueError as err:
        return None, f"the stored call does not validate: {err}"
    return action, "" if action else f"{row['action']} is not a final action"


def _assemble(
    pair: PairInput, tokenizer: Any, settings: TripleSettings
) -> dict[str, Any] | tuple[str, str]:
    """The triple row, or ``(rule, message)`` why there is none."""
    path = pair.path
    if pair.rejection is None:
        return "not_run", DROP_RULES["not_run"]
    rejected, why = _rejected(pair)
    if rejected is None:
        return "rejection_failed", why
    chosen = (
        action_of(pair.chosen["action"], pair.chosen["arguments_json"]) if pair.chosen else None
    )
    if chosen is None:
        return "no_chosen", "no dpo_chosen row for this path"
    for side, action in (("chosen", chosen), ("rejected", rejected)):
        if rule := _reasoning_rule(side, action):
            return rule, DROP_RULES[rule]
    if chosen.model_dump() == rejected.model_dump() and type(chosen) is type(rejected):
        return "identical", f"both {type(chosen).__name__} with the same arguments"
    kind = pair_type(chosen, rejected)
    if settings.pair_types != "all" and kind != settings.pair_types:
        return "pair_type_excluded", f"{kind} pair, pair_types={settings.pair_types}"
    messages = prompt_messages(path)
    prompt, chosen_text = completion([*messages, call_message(chosen)], tokenizer)
    _, rejected_text = completion([*messages, call_message(rejected)], tokenizer)
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"])
               for t in (prompt, chosen_text, rejected_text)]  # fmt: skip
    longest = lengths[0] + max(lengths[1:])
    if longest > settings.max_length:
        return "over_length", f"{longest} tokens > max_length {settings.max_length}"
    return {
        "batch": path.batch,
        "conversation_id": path.conversation_id,
        "medark_key": path.medark_key,
        "turn_index": path.turn_index,
        "language": path.language,
        "pair_type": kind,
        "chosen_action": type(chosen).__name__,
        "rejected_action": type(rejected).__name__,
        "rejection_mode": (pair.rejection or {}).get("mode"),
        "prompt": prompt,
        "chosen": chosen_text,
        "rejected": rejected_text,
        "prompt_tokens": lengths[0],
        "chosen_tokens": lengths[1],
        "rejected_tokens": lengths[2],
        "messages_json": json.dumps(
            [*messages, call_message(chosen), call_message(rejected)], ensure_ascii=False
        ),
        "prompt_version": render_prompt(path.language).version,
    }


def build_triples(
    pairs: Iterable[PairInput], tokenizer: Any, settings: TripleSettings
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(triples, drops)``: every pair is in exactly one of them."""
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for pair in pairs:
        outcome = _assemble(pair, tokenizer, settings)
        if isinstance(outcome, tuple):
            dropped.append(_drop(pair.path, *outcome))
        else:
            kept.append(outcome)
    return frame(kept, DPO_TRIPLES), frame(dropped, DPO_DROPS)


def invalid_triples(triples: pl.DataFrame) -> list[dict[str, Any]]:
    """Triples breaking the table's promise: chosen equal to rejected, or a completion that does
    not parse as a valid Ask or Tell call (what the blocking check reports)."""
    invalid = []
    for row in triples.iter_rows(named=True):
        where = {"conversation_id": row["conversation_id"], "turn_index": row["turn_index"]}
        if row["chosen"] == row["rejected"]:
            invalid.append({**where, "reason": "chosen equals rejected"})
            continue
        for side in ("chosen", "rejected"):
            try:
                action = validate_call(*parse_tool_call(row[side]))
            except (ValueError, KeyError, TypeError) as err:
                invalid.append({**where, "reason": f"{side}: {type(err).__name__}: {err}"})
                continue
            if not isinstance(action, AskAction | TellAction):
                invalid.append({**where, "reason": f"{side}: {type(action).__name__}"})
    return invalid


def triple_counts(paths: int, triples: pl.DataFrame, drops: pl.DataFrame) -> dict[str, Any]:
    """What a materialization reports: pairs in, kept by type, dropped by rule."""
    actions = triples.select("chosen_action", "rejected_action").iter_rows()
    return {
        "paths": paths,
        "triples": triples.height,
        "dropped": drops.height,
        "by_pair_type": dict(Counter(triples["pair_type"].to_list())),
        "by_action": dict(Counter(f"{c} > {r}" for c, r in actions)),
        "drops_by_rule": dict(Counter(drops["rule"].to_list())),
    }
