"""DPO trainer: trl ``DPOTrainer`` continuing the SFT LoRA adapter on preference pairs.

Runs in its own process (``python -m ark_assets.lib.training.dpo_train``; by hand with the
run's ``SETTINGS.json``), launched through Dagster Pipes like ``sft_train``, whose ``settings``
extra carries the run's settings: CUDA memory and crashes stay in this process, logs, reward
curves and the final metadata stream back as Pipes messages; run by hand it prints them to stdout.

The pairs (``dpo_pairs.DPO_TRIPLES``) are text: ``prompt`` is the SFT chat through the generation
prompt, ``chosen`` and ``rejected`` two assistant tool calls through ``<|im_end|>``. The policy is
the SFT adapter, loaded trainable; the **reference is the frozen SFT policy**, never a second model
copy: given a ``PeftModel`` and ``ref_model=None``, trl adds a ``"ref"`` adapter copied from the SFT
(``"default"``) one and scores the reference with it active (:data:`REFERENCE_POLICY`). That is
measured, not assumed: the logits of the first pair are taken from the SFT policy as loaded, and
after training again through the ``"ref"`` adapter (``reference_max_abs_diff``, ~0) and through
the trained one (``policy_max_abs_diff``, > 0 when it learned).

Only the trained ``"default"`` adapter is saved, with the tokenizer, a ``training_card.json`` and
``reward_curves.png``. Checkpoints (every ``save_steps``) hold both adapters, and a rerun resumes
from the latest one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl
import torch
from pydantic import Field

from ark_assets.lib.artifacts import atomic_directory
from ark_assets.lib.hashing import sha256_tree
from ark_assets.lib.training.allocator import running_allocator, use_wanted_allocator
from ark_assets.lib.training.curves import plot_curves
from ark_assets.lib.training.sft_train import (
    RunSettings,
    _device,
    _Reporter,
    latest_checkpoint,
    peak_memory_mib,
    write_card,
)

if TYPE_CHECKING:
    from peft import PeftModel

REFERENCE_ADAPTER: Final = "ref"  # the name trl's DPOTrainer gives the frozen copy
TRAINED_ADAPTER: Final = "default"  # peft's name for the adapter loaded from sft_adapter_path
REWARD_SERIES: Final = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
)  # trl 1.16's log keys (DPOTrainer._compute_loss), beside the loss
CURVE_KEYS: Final = ("loss", *REWARD_SERIES)
REWARD_PLOT: Final = "reward_curves.png"
REFERENCE_POLICY: Final = (
    "The frozen SFT policy: trl's DPOTrainer, given the SFT adapter as a PeftModel and no "
    "ref_model, adds a 'ref' LoRA adapter copied from the SFT ('default') adapter and computes "
    "the reference log-probs with 'ref' active, so DPO is anchored to the model it starts from "
    "at the cost of one extra adapter, not a second model. Older trl DPOTrainers disabled the "
    "adapter instead, making the reference the base model, which is why MedArk's reference "
    "(a PEFT policy with no ref_model) is ambiguous without its trl version."
)


class DpoSettings(RunSettings):
    """One DPO run: every hyperparameter, MedArk's by default."""

    sft_adapter_path: str = Field(description="The SFT LoRA adapter the DPO continues.")
    pairs_path: str = Field(description="Parquet with prompt, chosen and rejected text columns.")
    beta: float = 0.08
    learning_rate: float = 5e-7
    epochs: float = 1.0
    batch_size: int = 1
    max_length: int = Field(
        default=2048, description="Tokens of prompt + completion; longer pairs are refused."
    )
    loss_type: str = "sigmoid"


class PairTokenCounter:
    """Wraps trl's preference collator and counts, per batch, the real (non-pad) tokens of its
    prompt+chosen and prompt+rejected rows (a pair's prompt twice: the policy reads both rows;
    the reference forward reads them again) and the padded size of the batch."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate
        self.useful = 0
        self.processed = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = self.collate(features)
        self.useful += int(batch["attention_mask"].sum())
        self.processed += int(batch["input_ids"].numel())
        return batch


def _refuse_over_length(dataset: Any, pairs: int, max_length: int) -> None:
    """trl truncates a sequence over ``max_length`` and drops a pair whose prompt alone fills
    it; upstream already dropped such pairs, so meeting one here means the two disagree."""
    rows = zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"], strict=True)
    too_long = [
        i
        for i, (prompt, chosen, rejected) in enumerate(rows)
        if len(prompt) + max(len(chosen), len(rejected)) > max_length
    ]
    if too_long or len(dataset) != pairs:
        raise ValueError(
            f"{pairs - len(dataset) + len(too_long)} pair(s) exceed max_length={max_length} "
            f"tokens (rows {too_long[:5]}…): build the pairs with the same max_length "
            "(dpo_pairs drops longer ones) or raise max_length here"
        )


def _first_pair(pairs: pl.DataFrame, tokenizer: Any) -> tuple[torch.Tensor, int]:
    """The first pair's prompt + chosen as token ids, and how many of them are the chosen."""
    first = pairs.row(0, named=True)
    prompt = tokenizer(first["prompt"], add_special_tokens=False)["input_ids"]
    ids = tokenizer(first["prompt"] + first["chosen"], add_special_tokens=False)["input_ids"]
    return torch.tensor([ids]), len(ids) - len(prompt)


def _chosen_logits(model: PeftModel, ids: torch.Tensor, completion: int) -> torch.Tensor:
    """Logits at the positions that predict the chosen completion: what DPO scores."""
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, logits_to_keep=completion + 1).logits[:, :-1]
    return logits.float().cpu()


def _reference_logits(model: PeftModel, ids: torch.Tensor, completion: int) -> torch.Tensor:
    """:func:`_chosen_logits` with the reference adapter active, switched as trl's
    ``use_adapter`` does it, then the trained adapter active again."""
    model.set_adapter(REFERENCE_ADAPTER)
    try:
        return _chosen_logits(model, ids, completion)
    finally:
        model.set_adapter(TRAINED_ADAPTER)


def _curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The logged training steps; from trainer state, so a resumed run keeps earlier steps."""
    return [
        {"step": entry["step"], **{key: float(entry[key]) for key in CURVE_KEYS}}
        for entry in log_history
        if all(key in entry for key in CURVE_KEYS)
    ]


def train(settings: DpoSettings, reporter: _Reporter) -> dict[str, Any]:
    import peft
    import trl
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    device = _device(settings)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    tokenizer = AutoTokenizer.from_pretrained(settings.base_model_path)
    base = AutoModelForCausalLM.from_pretrained(
        settings.base_model_path, dtype=torch.bfloat16 if bf16 else torch.float32
    )
    model = PeftModel.from_pretrained(base, settings.sft_adapter_path, is_trainable=True)
    model.to(device)
    pairs = pl.read_parquet(settings.pairs_path, columns=["prompt", "chosen", "rejected"])

    first_ids, chosen_tokens = _first_pair(pairs, tokenizer)
    first_ids = first_ids.to(device)
    sft_logits = _chosen_logits(model, first_ids, chosen_tokens)

    config = DPOConfig(
        output_dir=settings.checkpoint_dir,
        beta=settings.beta,
        loss_type=[settings.loss_type],
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        activation_checkpointing=settings.gradient_checkpointing,  # transformers 5's name
        max_length=settings.max_length,
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
    )

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and all(key in logs for key in CURVE_KEYS):
                point = {"step": state.global_step, **{k: float(logs[k]) for k in CURVE_KEYS}}
                reporter.event({"kind": "rewards", **point})
                reporter.log(
                    f"step {state.global_step}/{state.max_steps} loss {point['loss']:.4f} "
                    f"margin {point['rewards/margins']:.4f} "
                    f"accuracy {point['rewards/accuracies']:.2f}"
                )

    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=config,
        train_dataset=Dataset.from_dict(pairs.to_dict(as_series=False)),
        processing_class=tokenizer,
        callbacks=[Progress()],
    )
    if REFERENCE_ADAPTER not in model.peft_config:
        raise RuntimeError(
            f"trl {trl.__version__} added no {REFERENCE_ADAPTER!r} adapter, so its reference "
            "would be the base model, not the SFT policy: use trl>=1.16 with peft>=0.20"
        )
    _refuse_over_length(trainer.train_dataset, len(pairs), settings.max_length)
    counter = PairTokenCounter(trainer.data_collator)
    trainer.data_collator = counter

    checkpoint = latest_checkpoint(Path(settings.checkpoint_dir))
    resumed_from = checkpoint.name if checkpoint else None
    if checkpoint:
        reporter.log(f"resuming from {checkpoint.name}")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - start

    reference_diff = float(
        (_reference_logits(model, first_ids, chosen_tokens) - sft_logits).abs().max()
    )
    policy_diff = float((_chosen_logits(model, first_ids, chosen_tokens) - sft_logits).abs().max())
    curve = _curve(trainer.state.log_history)
    final = curve[-1] if curve else {}
    with atomic_directory(Path(settings.output_dir)) as tmp:
        model.save_pretrained(str(tmp), selected_adapters=[TRAINED_ADAPTER])
        tokenizer.save_pretrained(tmp)
        card = {
            "base_model_path": settings.base_model_path,
            "sft_adapter_path": settings.sft_adapter_path,
            "provenance": settings.provenance,
            "settings": settings.model_dump(exclude={"provenance"}),
            "trl_version": trl.__version__,
            "peft_version": peft.__version__,
            "reference_policy": REFERENCE_POLICY,
            "global_step": trainer.state.global_step,
            "final": final,
            "train_loss": float(result.training_loss),
            "reference_max_abs_diff": reference_diff,
            "policy_max_abs_diff": policy_diff,
        }
        plot_curves(curve, REWARD_SERIES, "DPO rewards", tmp / REWARD_PLOT)
        write_card(tmp, card, settings)
    peak = peak_memory_mib(device)
    return {
        **settings.provenance,
        "adapter_path": settings.output_dir,
        "adapter_sha256": sha256_tree(Path(settings.output_dir)),
        "global_step": trainer.state.global_step,
        "resumed_from": resumed_from,
        "pairs": len(pairs),
        "final_loss": final.get("loss"),
        "train_loss": float(result.training_loss),
        "reward_curve": curve,
        "reward_plot_path": str(Path(settings.output_dir) / REWARD_PLOT),
        "useful_tokens": counter.useful,
        "processed_tokens": counter.processed,
        "useful_ratio": counter.useful / counter.processed if counter.processed else None,
        "train_seconds": seconds,
        "useful_tokens_per_s": counter.useful / seconds if seconds else None,
        "allocator": running_allocator(),
        "peak_memory_mib": peak,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "dtype": "bf16" if bf16 else "fp32",
        "trl_version": trl.__version__,
        "peft_version": peft.__version__,
        "reference_policy": REFERENCE_POLICY,
        "reference_max_abs_diff": reference_diff,
        "policy_max_abs_diff": policy_diff,
    }


def main(argv: list[str] | None = None) -> None:
    reporter = _Reporter()
    try:
        settings = DpoSettings.model_validate(reporter.settings(argv))
        outcome = train(settings, reporter)
        reporter.materialized(outcome)
    finally:
        reporter.close()


if __name__ == "__main__":
    use_wanted_allocator(__spec__.name)  # before Pipes opens: it may re-execute
    main()
