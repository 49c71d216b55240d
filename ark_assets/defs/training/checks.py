"""Contracts of the SFT records: labels, tool calls, role order, split, quarantine share."""

import json

import dagster as dg
import polars as pl

from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.resources import Warehouse
from ark_assets.defs.training.resources import BaseModel
from ark_assets.lib.training.render import parse_tool_call, validate_call
from ark_assets.lib.training.sft_records import role_order_valid

LABELS_ARE_ONE_ASSISTANT_TURN = "sft_labels_are_one_assistant_turn"
TOOL_CALLS_VALID = "sft_tool_calls_valid"
ROLE_ORDER_VALID = "sft_role_order_valid"
SPLIT_DISJOINT = "sft_split_disjoint"
QUARANTINE_SHARE = "sft_quarantine_share"
# More over-length examples than this means max_length or the prompts need attention.
MAX_QUARANTINE_SHARE = 0.05
_SAMPLE = 200  # label decoding is checked on a deterministic sample of each batch


@dg.asset_check(
    asset="sft_records",
    name=LABELS_ARE_ONE_ASSISTANT_TURN,
    blocking=True,
    partitions_def=dialogue_batches,
    description="The labelled tokens decode to exactly one assistant turn, ending at <|im_end|>.",
)
def sft_labels_are_one_assistant_turn(
    sft_records: pl.DataFrame, base_model: BaseModel
) -> dg.AssetCheckResult:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model.local_path())
    bad = []
    for row in sft_records.head(_SAMPLE).iter_rows(named=True):
        decoded = tokenizer.decode(row["input_ids"][row["prompt_tokens"] :])
        text = row["label_text"]
        if decoded != text or text.count("<tool_call>") != 1 or not text.endswith("<|im_end|>"):
            bad.append(f"{row['conversation_id'][:12]}:{row['turn_index']}:{row['step']}")
    return dg.AssetCheckResult(
        passed=not bad, metadata={"checked": min(_SAMPLE, sft_records.height), "bad": bad[:20]}
    )


@dg.asset_check(
    asset="sft_records",
    name=TOOL_CALLS_VALID,
    blocking=True,
    partitions_def=dialogue_batches,
    description="Every labelled tool call parses as JSON and validates against its action schema.",
)
def sft_tool_calls_valid(sft_records: pl.DataFrame) -> dg.AssetCheckResult:
    errors = []
    for row in sft_records.select("conversation_id", "label_text", "action").iter_rows():
        try:
            name, arguments = parse_tool_call(row[1])
            validate_call(name, arguments)
            if name != row[2]:
                raise ValueError(f"call {name} recorded as {row[2]}")
        except (ValueError, KeyError) as err:
            # The error's text quotes the arguments (dialogue text): name the error only.
            errors.append(f"{row[0][:12]}: {type(err).__name__}")
    return dg.AssetCheckResult(passed=not errors, metadata={"errors": errors[:20]})


@dg.asset_check(
    asset="sft_records",
    name=ROLE_ORDER_VALID,
    blocking=True,
    partitions_def=dialogue_batches,
    description="system, user, (RetrievalAction, tool response)*, final assistant turn.",
)
def sft_role_order_valid(sft_records: pl.DataFrame) -> dg.AssetCheckResult:
    invalid = [
        cid[:12]
        for cid, messages in sft_records.select("conversation_id", "messages_json").iter_rows()
        if not role_order_valid(json.loads(messages))
    ]
    return dg.AssetCheckResult(passed=not invalid, metadata={"invalid": invalid[:20]})


@dg.asset_check(
    asset="sft_records",
    name=SPLIT_DISJOINT,
    blocking=True,
    partitions_def=dialogue_batches,
    description="No conversation key has examples in both train and heldout, across all batches.",
)
def sft_split_disjoint(warehouse: Warehouse) -> dg.AssetCheckResult:
    straddling = warehouse.read(
        "sft_records",
        "select medark_key from {table} group by medark_key having count(distinct split) > 1",
    )
    keys = [] if straddling is None else straddling["medark_key"].to_list()
    return dg.AssetCheckResult(passed=not keys, metadata={"straddling_keys": keys[:20]})


@dg.asset_check(
    asset="sft_quarantine",
    name=QUARANTINE_SHARE,
    partitions_def=dialogue_batches,
    additional_ins={"sft_records": dg.AssetIn()},
    description=f"Quarantined examples ≤ {MAX_QUARANTINE_SHARE:.0%} of the batch's examples.",
)
def sft_quarantine_share(
    sft_quarantine: pl.DataFrame, sft_records: pl.DataFrame
) -> dg.AssetCheckResult:
    total = sft_quarantine.height + sft_records.height
    share = sft_quarantine.height / total if total else 0.0
    return dg.AssetCheckResult(
        passed=share <= MAX_QUARANTINE_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": sft_quarantine.height, "share": share},
    )
