"""LoRA SFT trainer on pre-tokenized ark examples: our recipe (peft + trl ``SFTTrainer``) or
MedArk's (peft + the plain transformers ``Trainer``), chosen by ``recipe``.

Runs in its own process (``python -m ark_assets.lib.training.sft_train CONFIG.json``), launched
by the ``sft_adapter`` asset through Dagster Pipes: CUDA memory and crashes stay in this process,
logs and metrics stream back as Pipes messages, and the final metadata is reported as the
asset's materialization. Run by hand it prints the same messages to stdout.

``recipe = "ark"`` (the default) projects only the labelled positions through the LM head
(``sft_step.causal_lm_loss``) on every device; ``"medark"`` is MedArk's trainer as MedArk runs
it: the model's own loss over full-vocabulary logits at every position, every example padded to
``max_length`` (``batching = "pad_to_max"``), kept for benchmarks (``bench.sft``).

No example of ours is padded to a fixed length: ``batching = "length_grouped"`` sorts examples
into batches of similar length and pads each batch only to its longest member;
``"padding_free"`` concatenates a batch into one row with position ids (needs flash-attention
kernels, i.e. a GPU); ``"pad_to_max"`` pads every example to ``max_length`` as MedArk does.

Ours also keeps less for the backward pass (``lean_activations``, ``lean_layers``) and runs
under tcmalloc where the machine has it (``allocator``): without recompute, the saved
activations and the allocator's slack are most of a CPU step's peak memory.
"""

from __future__ import annotations

import functools
import json
import math
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import torch
from pydantic import BaseModel, Field, model_validator

from ark_assets.lib.artifacts import atomic_directory
from ark_assets.lib.compliance.provenance import BUILT_WITH, build_environment
from ark_assets.lib.hashing import sha256_tree
from ark_assets.lib.training.allocator import running_allocator, use_wanted_allocator
from ark_assets.lib.training.curves import plot_curves
from ark_assets.lib.training.lean_layers import make_lean
from ark_assets.lib.training.runs import SETTINGS_EXTRA
from ark_assets.lib.training.sft_step import (
    LORA_TARGETS,
    MEDARK_LORA,
    causal_lm_loss,
    grouped_order,
    pad_to_length,
    peft_lora_config,
)

if TYPE_CHECKING:
    from peft import LoraConfig

LOSS_PLOT = "loss_curve.png"
Batching = Literal["length_grouped", "padding_free", "pad_to_max"]
LoraPreset = Literal["ark", "medark"]
Recipe = Literal["ark", "medark"]


class LoraSettings(BaseModel):
    """LoRA hyperparameters. r, alpha, dropout and rsLoRA default to MedArk's values; ``preset``
    picks the adapted modules: ``ark`` every projection, ``medark`` MedArk's LoRA exactly
    (q_proj and v_proj, with MedArk's values: other values are refused)."""

    preset: LoraPreset = "ark"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    use_rslora: bool = True

    @model_validator(mode="after")
    def _medark_is_exact(self) -> LoraSettings:
        values = {name: getattr(self, name) for name in MEDARK_LORA}
        if self.preset == "medark" and values != MEDARK_LORA:
            raise ValueError(
                f"lora preset 'medark' is MedArk's LoRA ({MEDARK_LORA}), got {values}: "
                "leave lora_r, lora_alpha, lora_dropout and use_rslora at their defaults, "
                "or use preset 'ark'"
            )
        return self

    @property
    def target_modules(self) -> list[str] | str:
        return LORA_TARGETS[self.preset]


def lora_config(lora: LoraSettings) -> LoraConfig:
    """The peft adapter configuration of ``lora``."""
    return peft_lora_config(lora.r, lora.alpha, lora.dropout, lora.use_rslora, lora.target_modules)


class RunSettings(BaseModel):
    """What every trainer run has: where it writes, the step budget and schedule knobs, the
    device, and the identity and lineage copied beside the adapter (SFT and DPO extend it)."""

    base_model_path: str
    output_dir: str = Field(description="Final adapter directory (replaced atomically).")
    checkpoint_dir: str = Field(description="Checkpoints; a rerun resumes from the latest.")
    lr_scheduler: str = "cosine"
    max_steps: int = -1
    gradient_accumulation: int = 1
    gradient_checkpointing: bool = False
    save_steps: int = 50
    logging_steps: int = 1
    seed: int = 20250626
    device: Literal["auto", "cpu", "cuda"] = "auto"
    provenance: dict[str, Any] = Field(
        default_factory=dict, description="Base model and data identity, copied to the card."
    )
    lineage_path: str | None = Field(
        default=None, description="Conversations and batches of the data, copied beside the card."
    )


class SftSettings(RunSettings):
    """One SFT run: every hyperparameter, with MedArk's where sane."""

    records_path: str = Field(description="Parquet with input_ids and prompt_tokens columns.")
    lora: LoraSettings = LoraSettings()
    # MedArk trains at 1e-2, which diverges for LoRA on small students; 2e-4 is the usual LoRA rate.
    learning_rate: float = 2e-4
    epochs: float = 2.0
    batch_size: int = 4
    batching: Batching = "length_grouped"
    max_length: int = 2048
    recipe: Recipe = Field(
        default="ark",
        description="ark: trl's SFTTrainer, the LM head and loss over labelled positions only; "
        "medark: MedArk's trainer (transformers Trainer, the model's own loss over "
        "full-vocabulary logits at every position), with batching pad_to_max.",
    )
    lean_activations: bool = Field(
        default=True,
        description="Recipe ark only: LoRA's dropout and the SwiGLU MLP keep less for the "
        "backward pass (lean_layers: the same maths, 1.9 GB less at 1,820 tokens with LoRA on "
        "every projection); recipe medark runs peft and transformers as they are.",
    )

    @model_validator(mode="after")
    def _medark_recipe_pads(self) -> SftSettings:
        if self.recipe == "medark" and self.batching != "pad_to_max":
            raise ValueError(
                f"recipe 'medark' pads every example to max_length as MedArk does, got batching "
                f"{self.batching!r}: set batching 'pad_to_max', or use recipe 'ark'"
            )
        return self


class _Reporter:
    """Pipes when launched by Dagster, stdout otherwise."""

    def __init__(self) -> None:
        from dagster_pipes import open_dagster_pipes

        self._pipes = None
        if _launched_by_dagster():
            self._opened = open_dagster_pipes()
            self._pipes = self._opened.__enter__()

    def settings(self, argv: list[str] | None) -> dict[str, Any]:
        """The run's settings: the Pipes context's ``settings`` extra when a launcher sent
        them, else the JSON file named on the command line (a run by hand)."""
        if self._pipes and SETTINGS_EXTRA in self._pipes.extras:
            return dict(self._pipes.extras[SETTINGS_EXTRA])
        args = argv if argv is not None else sys.argv[1:]
        if not args:
            raise SystemExit("no settings: name the run's settings.json (or launch through Pipes)")
        return json.loads(Path(args[0]).read_text())

    def log(self, message: str) -> None:
        if self._pipes:
            self._pipes.log.info(message)
        else:
            print(message, flush=True)

    def event(self, payload: dict[str, Any]) -> None:
        if self._pipes:
            self._pipes.report_custom_message(payload)
        else:
            print(json.dumps(payload), flush=True)

    def materialized(self, metadata: dict[str, Any]) -> None:
        if self._pipes:
            self._pipes.report_asset_materialization(metadata=metadata)
        else:
            print(json.dumps(metadata, default=str), flush=True)

    def close(self) -> None:
        if self._pipes:
            self._opened.__exit__(None, None, None)


def _launched_by_dagster() -> bool:
    return "DAGSTER_PIPES_CONTEXT" in os.environ


class TokenCounter:
    """Wraps a collator and counts real (non-pad) and processed tokens of every batch."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.collate = collate
        self.useful = 0
        self.processed = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(features)
        self.useful += sum(len(f["input_ids"]) for f in features)
        self.processed += int(batch["input_ids"].numel())
        return batch


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint: trainer_state.json is written last, so a checkpoint a
    crash interrupted mid-save is skipped."""
    complete = [
        path
        for path in directory.glob("checkpoint-*")
        if path.name.split("-")[-1].isdigit() and (path / "trainer_state.json").exists()
    ]
    return max(complete, key=lambda path: int(path.name.split("-")[-1]), default=None)


def write_card(directory: Path, card: dict[str, Any], settings: RunSettings) -> None:
    """The adapter's ``training_card.json`` with the git commit and package versions of this
    trainer process (``built_with``: what the audit reports), and the run's lineage copied
    beside it."""
    card = {**card, BUILT_WITH: build_environment()}
    (directory / "training_card.json").write_text(json.dumps(card, indent=2))
    if settings.lineage_path:
        shutil.copyfile(settings.lineage_path, directory / Path(settings.lineage_path).name)


def peak_memory_mib(device: str) -> float:
    """Peak CUDA memory allocated on a GPU, else the process's peak resident set."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _device(settings: RunSettings) -> str:
    """cuda when ``settings.device`` is auto and a GPU is there; else what it names."""
    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device


def length_grouped_order(lengths: list[int], settings: SftSettings) -> list[int]:
    """Row order whose consecutive batches hold examples of similar length, batches shuffled.

    transformers' LengthGroupedSampler sorts only inside random "megabatches" whose size
    shrinks to one batch for small datasets, i.e. no grouping at all; sorting every example
    and shuffling whole batches (seeded) groups at any dataset size.
    """
    per_update = settings.batch_size * settings.gradient_accumulation
    return grouped_order(lengths, per_update, settings.seed)


def training_order(lengths: list[int], settings: SftSettings) -> list[int]:
    """The order the trainer reads the rows in: ``length_grouped_order`` for length-grouped
    batches, else a seeded shuffle of single examples (MedArk shuffles its examples with a
    seed). At one example per update the two are the same permutation, so batch-1 runs of both
    recipes see the same examples in the same order (``bench.sft`` compares their losses)."""
    if settings.batching == "length_grouped":
        return length_grouped_order(lengths, settings)
    return grouped_order(lengths, 1, settings.seed)


def _dataset(settings: SftSettings) -> Any:
    from datasets import Dataset

    frame = pl.read_parquet(settings.records_path, columns=["input_ids", "prompt_tokens"])
    frame = frame.with_columns(length=pl.col("input_ids").list.len())
    frame = frame[training_order(frame["length"].to_list(), settings)]
    ids = frame["input_ids"].to_list()
    # Loss on the assistant turn only: everything before prompt_tokens is ignored (-100).
    labels = [
        [-100] * prompt + row[prompt:]
        for row, prompt in zip(ids, frame["prompt_tokens"], strict=True)
    ]
    return Dataset.from_dict(
        {"input_ids": ids, "labels": labels, "length": frame["length"].to_list()}
    )


class HeadRows:
    """Counts the rows the model's LM head projects through the vocabulary (a forward hook):
    every position of every padded row for MedArk's loss, the labelled positions for ours."""

    def __init__(self, model: Any) -> None:
        self.rows = 0
        model.get_output_embeddings().register_forward_hook(self._count)

    def _count(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        self.rows += int(args[0].shape[:-1].numel())


def _medark_trainer(
    settings: SftSettings, model: Any, dataset: Any, collator: TokenCounter, arguments: dict
) -> Any:
    """MedArk's trainer: peft's LoRA on the model, the plain transformers Trainer, whose loss is
    the model's own (full-vocabulary logits at every position, labels -100 outside the answer)."""
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed

    set_seed(settings.seed)  # as trl does before peft: both recipes start from one LoRA init
    model = get_peft_model(model, lora_config(settings.lora))
    if settings.gradient_checkpointing:
        model.enable_input_require_grads()  # as trl: Trainer misses it (transformers#42489)
    return Trainer(
        model=model,
        args=TrainingArguments(**arguments, label_names=["labels"]),
        train_dataset=dataset,
        data_collator=collator,
    )


def _ark_trainer(
    settings: SftSettings,
    model: Any,
    tokenizer: Any,
    dataset: Any,
    collator: TokenCounter,
    arguments: dict,
) -> Any:
    """Our trainer: trl's SFTTrainer with the loss of ``sft_step.causal_lm_loss``. trl's fused
    LM head skips the unlabelled positions only on CUDA (with Triton); on CPU it scores every
    position, so the loss is ours on every device."""
    from trl import SFTConfig, SFTTrainer

    class LabelledLossTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = causal_lm_loss(model, inputs, num_items_in_batch)
            return (loss, None) if return_outputs else loss

    config = SFTConfig(
        **arguments,
        max_length=None,  # over-length examples were quarantined upstream, never truncated
        padding_free=settings.batching == "padding_free",
    )
    return LabelledLossTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(settings.lora),
        data_collator=collator,
    )


def train(settings: SftSettings, reporter: _Reporter) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    device = _device(settings)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    tokenizer = AutoTokenizer.from_pretrained(settings.base_model_path)
    model = AutoModelForCausalLM.from_pretrained(
        settings.base_model_path,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        attn_implementation="flash_attention_2" if settings.batching == "padding_free" else "sdpa",
    )
    head_rows = HeadRows(model)
    dataset = _dataset(settings)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    arguments = dict(
        output_dir=settings.checkpoint_dir,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        gradient_checkpointing=settings.gradient_checkpointing,
        train_sampling_strategy="sequential",  # the rows are in training_order already
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        logging_steps=settings.logging_steps,
        report_to="none",
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=bf16,
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    if settings.recipe == "medark":
        collator = TokenCounter(
            functools.partial(pad_to_length, length=settings.max_length, pad_id=pad_id)
        )
        trainer = _medark_trainer(settings, model, dataset, collator, arguments)
    else:
        collator = TokenCounter(
            DataCollatorForLanguageModeling(
                pad_token_id=pad_id,
                padding_free=settings.batching == "padding_free",
                pad_to_multiple_of=(
                    settings.max_length if settings.batching == "pad_to_max" else None
                ),
            )
        )
        trainer = _ark_trainer(settings, model, tokenizer, dataset, collator, arguments)
    lean: dict[str, int] = {}
    if settings.recipe == "ark" and settings.lean_activations:
        lean = make_lean(trainer.model)
        reporter.log(f"lean saved activations: {lean}")
    losses: list[dict[str, float]] = []

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                point = {"step": state.global_step, "loss": float(logs["loss"])}
                losses.append(point)
                reporter.event({"kind": "loss", **point})
                reporter.log(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}")

    trainer.add_callback(Progress())
    checkpoint = latest_checkpoint(Path(settings.checkpoint_dir))
    resumed_from = checkpoint.name if checkpoint else None
    if checkpoint:
        reporter.log(f"resuming from {checkpoint.name}")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - start
    with atomic_directory(Path(settings.output_dir)) as tmp:
        trainer.model.save_pretrained(tmp)  # type: ignore[union-attr,operator]
        tokenizer.save_pretrained(tmp)
        card = {
            "base_model_path": settings.base_model_path,
            "provenance": settings.provenance,
            "settings": settings.model_dump(exclude={"provenance"}),
            "global_step": trainer.state.global_step,
            "final_loss": losses[-1]["loss"] if losses else math.nan,
            "train_loss": float(result.training_loss),
        }
        plot_curves(losses, ["loss"], "SFT training loss", tmp / LOSS_PLOT)
        write_card(tmp, card, settings)
    peak = peak_memory_mib(device)
    return {
        **settings.provenance,
        "adapter_path": settings.output_dir,
        "adapter_sha256": sha256_tree(Path(settings.output_dir)),
        "global_step": trainer.state.global_step,
        "resumed_from": resumed_from,
        "examples": len(dataset),
        "final_loss": losses[-1]["loss"] if losses else None,
        "train_loss": float(result.training_loss),
        "loss_curve": losses,
        "loss_plot_path": str(Path(settings.output_dir) / LOSS_PLOT),
        "useful_tokens": collator.useful,
        "processed_tokens": collator.processed,
        "useful_ratio": collator.useful / collator.processed if collator.processed else None,
        "train_seconds": seconds,
        "useful_tokens_per_s": collator.useful / seconds if seconds else None,
        "lm_head_rows": head_rows.rows,
        "recipe": settings.recipe,
        # Pipes metadata values are scalars or lists: the counts, not make_lean's dict
        "lean_lora_modules": lean.get("lora_linear", 0),
        "lean_mlp_modules": lean.get("swiglu_mlp", 0),
        "allocator": running_allocator(),
        "peak_memory_mib": peak,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "dtype": "bf16" if bf16 else "fp32",
    }


def main(argv: list[str] | None = None) -> None:
    reporter = _Reporter()
    try:
        settings = SftSettings.model_validate(reporter.settings(argv))
        outcome = train(settings, reporter)
        reporter.materialized(outcome)
    finally:
        reporter.close()


if __name__ == "__main__":
    use_wanted_allocator(__spec__.name)  # before Pipes opens: it may re-execute
    main()
