"""The trainer's two recipes on a tiny random-weight Qwen2: MedArk's (transformers Trainer,
full-vocabulary loss, every example padded to 2048) and ours (labelled positions only), on the
same two examples in the same order."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch

from ark_assets.lib.training.render import examples_for, messages_for
from ark_assets.lib.training.sft_train import SftSettings, training_order
from ark_assets_tests.lib.training.paths import ask_path, tell_path

MEDARK = {"recipe": "medark", "batching": "pad_to_max", "gradient_checkpointing": True}
OURS_AT_MEDARK_TARGETS = {"recipe": "ark", "batching": "length_grouped"}


@pytest.fixture(scope="module")
def records(qwen_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    rows = [
        {"input_ids": e.input_ids, "prompt_tokens": e.prompt_tokens}
        for path in (ask_path(), tell_path())
        for e in examples_for(messages_for(path), qwen_tokenizer)[-1:]
    ]
    return pl.DataFrame(rows)


def _settings(tiny_model: Path, records_path: Path, root: Path, **recipe) -> SftSettings:
    return SftSettings.model_validate(
        {
            "base_model_path": str(tiny_model),
            "records_path": str(records_path),
            "output_dir": str(root / "adapter"),
            "checkpoint_dir": str(root / "checkpoints"),
            "batch_size": 1,
            "max_steps": 2,  # one pass over the two examples
            "save_steps": 100,
            "device": "cpu",
            "lora": {"preset": "medark"},
            **recipe,
        }
    )


@pytest.fixture(scope="module")
def runs(tiny_model: Path, records: pl.DataFrame, tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("recipes")
    records.write_parquet(root / "records.parquet")
    outcomes = {}
    for name, recipe in {"medark": MEDARK, "ours": OURS_AT_MEDARK_TARGETS}.items():
        settings = _settings(tiny_model, root / "records.parquet", root / name, **recipe)
        path = root / f"{name}.json"
        path.write_text(settings.model_dump_json())
        run = subprocess.run(
            [sys.executable, "-m", "ark_assets.lib.training.sft_train", str(path)],
            capture_output=True,
            text=True,
            timeout=600,
            env={k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")},
        )
        assert run.returncode == 0, run.stderr[-3000:]
        lines = [line for line in run.stdout.splitlines() if line.startswith('{"')]
        outcomes[name] = {**json.loads(lines[-1]), "settings": settings}
    return outcomes


def test_medark_recipe_pads_every_example_to_2048_and_scores_every_position(
    runs: dict, records: pl.DataFrame
) -> None:
    medark = runs["medark"]
    assert medark["recipe"] == "medark" and medark["global_step"] == 2
    assert medark["processed_tokens"] == 2 * 2048
    assert medark["useful_tokens"] == records["input_ids"].list.len().sum()
    assert medark["lm_head_rows"] == 2 * 2048  # full-vocabulary logits at every position


def test_medark_recipe_loss_is_the_cross_entropy_of_the_full_logits(
    runs: dict, records: pl.DataFrame, tiny_model: Path
) -> None:
    """Step 1's logged loss, computed by hand: the first example in the training order,
    padded to 2048, full logits from the base model (a fresh LoRA adds zero), cross-entropy
    of every next token outside the prompt."""
    from transformers import AutoModelForCausalLM

    from ark_assets.lib.training.sft_step import pad_to_length

    lengths = records["input_ids"].list.len().to_list()
    first = records.row(training_order(lengths, runs["medark"]["settings"])[0], named=True)
    ids, prompt = first["input_ids"], first["prompt_tokens"]
    batch = pad_to_length(
        [{"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]}], 2048, pad_id=151643
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa")
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape == (1, 2048, 151936)
    by_hand = torch.nn.functional.cross_entropy(logits[0, :-1], batch["labels"][0, 1:])
    assert runs["medark"]["loss_curve"][0]["loss"] == pytest.approx(by_hand.item(), abs=1e-4)


def test_our_recipe_scores_only_labelled_positions_with_the_same_first_loss(
    runs: dict, records: pl.DataFrame
) -> None:
    ours, medark = runs["ours"], runs["medark"]
    lengths = records["input_ids"].list.len()
    assert ours["processed_tokens"] == ours["useful_tokens"] == lengths.sum()
    assert ours["lm_head_rows"] == (lengths - records["prompt_tokens"]).sum()
    # Same first example (one order at batch 1) and the same model before any update.
    assert ours["loss_curve"][0]["loss"] == pytest.approx(medark["loss_curve"][0]["loss"], abs=1e-4)


def test_batch_one_orders_are_one_permutation_for_both_recipes() -> None:
    lengths = [900, 1900, 1000, 1800, 950, 1000, 1020]
    fields = {"base_model_path": "m", "records_path": "r", "output_dir": "o",
              "checkpoint_dir": "c", "batch_size": 1}  # fmt: skip
    medark = SftSettings.model_validate({**fields, **MEDARK})
    ours = SftSettings.model_validate({**fields, **OURS_AT_MEDARK_TARGETS})
    order = training_order(lengths, medark)
    assert order == training_order(lengths, ours) and sorted(order) == list(range(7))
    assert order != sorted(range(7), key=lengths.__getitem__)  # shuffled, not by length


def test_the_medark_recipe_refuses_other_batchings() -> None:
    with pytest.raises(ValueError, match="set batching 'pad_to_max'"):
        SftSettings(
            base_model_path="m", records_path="r", output_dir="o", checkpoint_dir="c",
            recipe="medark", batching="length_grouped",
        )  # fmt: skip
