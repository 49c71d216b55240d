"""DPO: held-out Ark paths → the doctor's reply as chosen, the SFT agent's action as rejected →
triples → an adapter that continues SFT (lib/training/dpo_pairs.py, dpo_train.py)."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import polars as pl
from pydantic import Field

from ark_assets.defs.agent.resources import PolicyResource
from ark_assets.defs.knowledge.resources import EmbedderResource, VectorStoreResource
from ark_assets.defs.metadata import (
    PHI_DEIDENTIFIED_TAGS,
    column_schema,
    json_values,
    table_metadata,
    table_out,
    training_metadata,
)
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.progress import loop_progress
from ark_assets.defs.quality import phi_free_result
from ark_assets.defs.resources import ArtifactStore, Warehouse
from ark_assets.defs.synthesis.resources import TeacherResource
from ark_assets.defs.training.jobs import TRAINING_TAGS
from ark_assets.defs.training.resources import BaseModel, TrainingLauncher, latest_adapter
from ark_assets.lib.hashing import sha256_tree
from ark_assets.lib.synthesis.models import Entities
from ark_assets.lib.synthesis.tables import ARK_PATHS, path_from_row
from ark_assets.lib.training.dpo_pairs import (
    DPO_CHOSEN,
    DPO_DROPS,
    DPO_REJECTIONS,
    DPO_TRIPLES,
    PairInput,
    TripleSettings,
)

GROUP = "training"
DPO_TRAINER = "ark_assets.lib.training.dpo_train"
TRIPLES_VALID = "dpo_triples_valid"
TRIPLES_HELDOUT = "dpo_triples_heldout_only"
TRIPLES_PHI_FREE = "dpo_triples_phi_free"
ON_NEW_INPUTS = dg.AutomationCondition.eager().with_label("after new held-out paths")


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"polars", "duckdb"},
    ins={"ark_paths": dg.AssetIn(), "sft_records": dg.AssetIn()},
    partitions_def=dialogue_batches,
    tags=PHI_DEIDENTIFIED_TAGS,
    metadata={"dagster/column_schema": column_schema(ARK_PATHS), "partition_expr": "batch"},
    automation_condition=ON_NEW_INPUTS,
)
def dpo_paths(
    context: dg.AssetExecutionContext,
    ark_paths: pl.DataFrame,
    sft_records: pl.DataFrame,
    warehouse: Warehouse,
) -> dg.Output[pl.DataFrame]:
    """The Ark first pass over the batch's held-out split: the synthesis paths (same loop, same
    teacher cache) of the conversations sft_records holds out, so no DPO prompt is one SFT
    trained on. Each path gives a pair's prompt (the teacher's retrieval turns) and its chosen."""
    heldout = sft_records.filter(pl.col("split") == "heldout")["conversation_id"].unique()
    paths = warehouse.forgotten().exclude(ark_paths)
    kept = paths.filter(pl.col("conversation_id").is_in(heldout.implode()))
    context.log.info(f"{kept.height} of {paths.height} paths are held out")
    facts = {"paths_in_batch": paths.height, "heldout_conversations": heldout.len()}
    return dg.Output(kept, metadata={**table_metadata(kept, ARK_PATHS), **facts})


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"polars", "duckdb"},
    ins={"dpo_paths": dg.AssetIn(), "ark_entities": dg.AssetIn()},
    partitions_def=dialogue_batches,
    tags=PHI_DEIDENTIFIED_TAGS,
    metadata={"dagster/column_schema": column_schema(DPO_CHOSEN), "partition_expr": "batch"},
    automation_condition=ON_NEW_INPUTS,
)
def dpo_chosen(dpo_paths: pl.DataFrame, ark_entities: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """The real doctor reply as each path's final Ask or Tell call, with the teacher's reasoning
    for that reply and, for asks, the seven entity lists regenerated for it (ark_entities): the
    call SFT trains on as the path's last step, from the teacher's cache."""
    from ark_assets.lib.tables import frame
    from ark_assets.lib.training.dpo_pairs import chosen_row

    lists = _entity_lists(ark_entities)
    rows = [
        chosen_row(path_from_row(r), lists.get((r["conversation_id"], r["turn_index"])))
        for r in dpo_paths.iter_rows(named=True)
    ]
    chosen = frame(rows, DPO_CHOSEN)
    counts = dict(chosen.group_by("action").len().iter_rows())
    return dg.Output(chosen, metadata={**table_metadata(chosen, DPO_CHOSEN), "actions": counts})


def _entity_lists(ark_entities: pl.DataFrame) -> dict[tuple[str, int], Entities]:
    from ark_assets.lib.synthesis.models import ENTITY_FIELDS

    return {
        (row["conversation_id"], row["turn_index"]): Entities(
            **{name: row[name] for name in ENTITY_FIELDS}
        )
        for row in ark_entities.iter_rows(named=True)
    }


class DpoRejectionsConfig(dg.Config):
    mode: Literal["forced_prefix", "own_path"] = Field(
        default="forced_prefix",
        description="forced_prefix: the SFT agent's final action from exactly the pair's prompt "
        "(the teacher's retrieval turns). own_path: MedArk's way, the action it reaches after "
        "its own retrievals from the bare dialogue (chosen and rejected then answer different "
        "contexts).",
    )
    max_paths: int = Field(default=0, description="Paths of the batch to run; 0: all.")
    max_new_tokens: int = Field(default=256, description="Per generation.")
    max_retrievals: int = Field(default=4, description="own_path: then Ask or Tell is forced.")
    batch_size: int = Field(default=16, description="Rows per generate call.")


@dg.asset(
    group_name=GROUP,
    code_version="2",
    kinds={"pytorch", "polars", "duckdb"},
    ins={"dpo_paths": dg.AssetIn()},
    deps=["sft_adapter", "base_model", "kb_index"],
    partitions_def=dialogue_batches,
    tags=PHI_DEIDENTIFIED_TAGS,
    metadata={"dagster/column_schema": column_schema(DPO_REJECTIONS), "partition_expr": "batch"},
    pool="gpu",
)
def dpo_rejections(
    context: dg.AssetExecutionContext,
    config: DpoRejectionsConfig,
    dpo_paths: pl.DataFrame,
    policy: PolicyResource,
    base_model: BaseModel,
    teacher: TeacherResource,
    embedder: EmbedderResource,
    vector_store: VectorStoreResource,
) -> dg.Output[pl.DataFrame]:
    """The latest SFT adapter's final action for every held-out path, through the agent loop
    (batched): from the pair's own prompt (forced_prefix) or from its own retrievals (own_path).
    A row that found no valid action is kept with its failure (dropped, counted, downstream)."""
    from ark_assets.lib.agent.tables import summary
    from ark_assets.lib.training.dpo_pairs import rejections_frame

    adapter = latest_adapter(context.instance)
    if adapter is None:
        raise dg.Failure("dpo_rejections needs the SFT agent: materialize sft_adapter first")
    rows = dpo_paths.sort("conversation_id", "turn_index")
    paths = [
        path_from_row(r) for r in rows.head(config.max_paths or rows.height).iter_rows(named=True)
    ]
    student = policy.open(base_model.local_path(), adapter)
    started = time.perf_counter()
    with teacher.open() as refiner:
        runs = _reject(config, paths, student, refiner, vector_store, embedder, base_model,
                       context.log)  # fmt: skip
    stats = summary(runs, time.perf_counter() - started)
    context.log.info(f"{stats['ok']}/{stats['prefixes']} final actions ({config.mode}): {stats}")
    frame = rejections_frame(runs, config.mode, student.identity.as_dict())
    meta = {**table_metadata(frame, DPO_REJECTIONS), **json_values(stats), "adapter": str(adapter)}
    return dg.Output(frame, metadata=meta)


def _reject(
    config: DpoRejectionsConfig,
    paths: list[Any],
    student: Any,
    refiner: Any,
    vector_store: VectorStoreResource,
    embedder: EmbedderResource,
    base_model: BaseModel,
    log: Any,
) -> list[Any]:
    from transformers import AutoTokenizer

    from ark_assets.lib.agent.loop import AgentLoop, LoopSettings
    from ark_assets.lib.agent.policy import Decoding
    from ark_assets.lib.training.dpo_pairs import prompt_messages

    settings = LoopSettings(
        max_retrievals=config.max_retrievals,
        batch_size=config.batch_size,
        decoding=Decoding(max_new_tokens=config.max_new_tokens),
    )
    tokenizer = AutoTokenizer.from_pretrained(base_model.local_path())
    retriever = vector_store.index(embedder).retriever() if config.mode == "own_path" else None
    on_step = loop_progress(log, "dpo_rejections", len(paths))
    loop = AgentLoop(student, tokenizer, retriever, refiner, settings, on_step)  # type: ignore[arg-type]
    if config.mode == "own_path":
        return loop.run(paths)
    return loop.final_from(paths, [prompt_messages(path) for path in paths])


class DpoTriplesConfig(dg.Config):
    pair_types: Literal["same", "different", "all"] = Field(
        default="all",
        description="Which pairs to keep: same (both ask or both tell: MedArk's only kind), "
        "different (an ask against a tell: teaches when to ask), or all.",
    )
    max_length: int = Field(default=2048, description="Prompt + completion tokens at most.")


@dg.multi_asset(
    outs={
        "dpo_triples": table_out(
            "{prompt, chosen, rejected} rendered with the SFT renderer: the doctor's reply "
            "preferred to the SFT agent's action on the same prompt.",
            DPO_TRIPLES,
            code_version="2",
            tags=PHI_DEIDENTIFIED_TAGS,
            automation=ON_NEW_INPUTS,
        ),
        "dpo_drops": table_out(
            "Pairs not kept, one row each with the rule (MedArk's filters, counted).",
            DPO_DROPS,
            code_version="2",
            automation=ON_NEW_INPUTS,
        ),
    },
    ins={
        "dpo_paths": dg.AssetIn(),
        "dpo_chosen": dg.AssetIn(),
        "dpo_rejections": dg.AssetIn(),
        "sft_records": dg.AssetIn(),
    },
    deps=["base_model"],
    partitions_def=dialogue_batches,
    group_name=GROUP,
    check_specs=[
        dg.AssetCheckSpec(name, asset="dpo_triples", blocking=True, description=description)
        for name, description in (
            (TRIPLES_VALID, "Chosen differs from rejected; both parse as valid Ask/Tell calls."),
            (TRIPLES_HELDOUT, "No triple's conversation is in the SFT training split."),
            (TRIPLES_PHI_FREE, "No PHI detector fires on any prompt or completion."),
        )
    ],
)
def dpo_triples(
    config: DpoTriplesConfig,
    dpo_paths: pl.DataFrame,
    dpo_chosen: pl.DataFrame,
    dpo_rejections: pl.DataFrame,
    sft_records: pl.DataFrame,
    base_model: BaseModel,
) -> Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]:
    """Every held-out path becomes a triple or a counted drop (paths = triples + drops); counts
    by pair type, action pair and drop rule in the metadata."""
    from transformers import AutoTokenizer

    from ark_assets.lib.training.dpo_pairs import build_triples, triple_counts

    tokenizer = AutoTokenizer.from_pretrained(base_model.local_path())
    settings = TripleSettings(pair_types=config.pair_types, max_length=config.max_length)
    triples, drops = build_triples(_pair_inputs(dpo_paths, dpo_chosen, dpo_rejections),
                                   tokenizer, settings)  # fmt: skip
    counts = json_values(triple_counts(dpo_paths.height, triples, drops))
    for name, table, columns in (
        ("dpo_triples", triples, DPO_TRIPLES),
        ("dpo_drops", drops, DPO_DROPS),
    ):
        yield dg.Output(table, name, metadata={**table_metadata(table, columns), **counts})
    yield from _triple_checks(triples, sft_records)


def _pair_inputs(
    paths: pl.DataFrame, chosen: pl.DataFrame, rejections: pl.DataFrame
) -> list[PairInput]:
    def by_key(frame: pl.DataFrame) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["conversation_id"], r["turn_index"]): r for r in frame.iter_rows(named=True)}

    chosen_rows, rejection_rows = by_key(chosen), by_key(rejections)
    pairs = []
    for row in paths.sort("conversation_id", "turn_index").iter_rows(named=True):
        key = (row["conversation_id"], row["turn_index"])
        pairs.append(PairInput(path_from_row(row), chosen_rows.get(key), rejection_rows.get(key)))
    return pairs


def _triple_checks(
    triples: pl.DataFrame, sft_records: pl.DataFrame
) -> Iterator[dg.AssetCheckResult]:
    from ark_assets.lib.compliance.deidentify import message_texts
    from ark_assets.lib.training.dpo_pairs import invalid_triples

    invalid = invalid_triples(triples)
    yield dg.AssetCheckResult(
        check_name=TRIPLES_VALID, asset_key="dpo_triples", passed=not invalid,
        metadata={"invalid": len(invalid), "examples": dg.MetadataValue.json(invalid[:5])},
    )  # fmt: skip
    train = set(sft_records.filter(pl.col("split") == "train")["conversation_id"].to_list())
    leaked = sorted(set(triples["conversation_id"].to_list()) & train)
    yield dg.AssetCheckResult(
        check_name=TRIPLES_HELDOUT, asset_key="dpo_triples", passed=not leaked,
        metadata={"in_sft_train": len(leaked), "conversations": dg.MetadataValue.json(leaked[:5])},
    )  # fmt: skip
    yield phi_free_result(
        message_texts(triples["messages_json"]), check_name=TRIPLES_PHI_FREE,
        asset_key="dpo_triples",
    )  # fmt: skip


class DpoConfig(dg.Config):
    """MedArk's DPO hyperparameters (beta 0.08, lr 5e-7 cosine, 1 epoch, batch 1, sigmoid)."""

    beta: float = Field(default=0.08, description="DPO temperature (MedArk: 0.08).")
    learning_rate: float = Field(default=5e-7, description="MedArk: 5e-7, cosine.")
    epochs: float = Field(default=1.0, description="Passes over the triples (MedArk: 1).")
    max_steps: int = Field(default=-1, description="Stop after this many steps (-1: epochs).")
    batch_size: int = Field(default=1, description="Pairs per device step (MedArk: 1).")
    gradient_accumulation: int = Field(default=1, description="Steps per optimizer update.")
    max_length: int = Field(default=2048, description="Explicit (MedArk left trl's default).")
    gradient_checkpointing: bool = Field(default=False, description="Trade compute for memory.")
    save_steps: int = Field(default=50, description="Checkpoint interval; reruns resume.")
    seed: int = Field(default=20250626, description="Data order.")


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "peft"},
    ins={"dpo_triples": dg.AssetIn()},
    deps=["sft_adapter", "base_model"],
    pool="gpu",
    tags=TRAINING_TAGS,
)
def dpo_adapter(
    context: dg.AssetExecutionContext,
    config: DpoConfig,
    dpo_triples: pl.DataFrame,
    base_model: BaseModel,
    training_launcher: TrainingLauncher,
    artifacts: ArtifactStore,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """trl DPOTrainer continuing the latest SFT adapter on every batch's triples, in its own
    process (Pipes); the reference is the frozen SFT policy (a frozen copy of the SFT adapter on
    the same base weights, never a second model). Resumes from its last checkpoint; reward
    curves as a PNG; its lineage holds the SFT adapter's conversations and the pairs'."""
    from ark_assets.lib.training.runs import prepare_run

    sft = latest_adapter(context.instance)
    if sft is None:
        raise dg.Failure("dpo_adapter continues the SFT adapter: materialize sft_adapter first")
    triples = warehouse.forgotten().exclude(dpo_triples).sort("conversation_id", "turn_index")
    if triples.is_empty():
        raise dg.Failure("no DPO triples to train on (see dpo_drops for why pairs were dropped)")
    settings_path = prepare_run(
        "dpo", triples, {**config.model_dump(), "sft_adapter_path": str(sft)},
        base_model.local_path(), Path(artifacts.root),
        provenance=_provenance(base_model, sft, triples),
        columns=("prompt", "chosen", "rejected"), inherited_lineage=_lineage(sft),
        data_setting="pairs_path",
    )  # fmt: skip
    context.log.info(f"DPO on {triples.height} triples from {sft} ({settings_path.parent})")
    result = training_launcher.run(context, DPO_TRAINER, settings_path).get_materialize_result()
    return dg.MaterializeResult(metadata={**(result.metadata or {}), **training_metadata(result)})


def _provenance(base_model: BaseModel, sft: Path, triples: pl.DataFrame) -> dict[str, Any]:
    return {
        "base_model": base_model.model,
        "base_model_sha256": sha256_tree(base_model.local_path()),
        "sft_adapter": str(sft),
        "sft_adapter_sha256": sha256_tree(sft),
        "record_batches": sorted(triples["batch"].unique().to_list()),
        **{f"pairs_{kind}": n for kind, n in triples.group_by("pair_type").len().iter_rows()},
    }


def _lineage(adapter: Path) -> dict[str, Any] | None:
    from ark_assets.lib.training.runs import LINEAGE_FILE

    path = adapter / LINEAGE_FILE
    return json.loads(path.read_text()) if path.is_file() else None
