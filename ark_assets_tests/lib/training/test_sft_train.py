"""The SFT trainer on a tiny random-weight Qwen2: trains, saves, reloads, generates, resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from ark_assets.lib.training.allocator import tcmalloc_library
from ark_assets.lib.training.render import examples_for, messages_for
from ark_assets.lib.training.sft_train import SftSettings
from ark_assets_tests.lib.training.paths import ask_path, tell_path


@pytest.fixture(scope="module")
def records(tiny_model: Path, qwen_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [
        {"input_ids": e.input_ids, "prompt_tokens": e.prompt_tokens}
        for path in (ask_path(), tell_path(), ask_path(1))
        for e in examples_for(messages_for(path), qwen_tokenizer)
    ]
    target = tmp_path_factory.mktemp("records") / "records.parquet"
    pl.DataFrame(rows).write_parquet(target)
    return target


def _settings(tiny_model: Path, records: Path, root: Path, **overrides) -> Path:
    fields = {
        "base_model_path": str(tiny_model),
        "records_path": str(records),
        "output_dir": str(root / "adapter"),
        "checkpoint_dir": str(root / "checkpoints"),
        "batch_size": 2,
        "save_steps": 2,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "use_rslora": True},
    }
    settings = SftSettings.model_validate({**fields, **overrides})
    path = root / "settings.json"
    path.write_text(settings.model_dump_json())
    return path


def _run(settings: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ark_assets.lib.training.sft_train", str(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")},
    )


def _outcome(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith('{"')][-1])


def test_trains_saves_reloads_and_generates(
    tiny_model: Path, records: Path, tmp_path: Path
) -> None:
    run = _run(_settings(tiny_model, records, tmp_path, max_steps=2))
    output = run.communicate(timeout=600)[0].decode()
    assert run.returncode == 0, output[-3000:]
    outcome = _outcome(output)
    assert outcome["global_step"] == 2 and outcome["resumed_from"] is None
    assert outcome["useful_tokens"] <= outcome["processed_tokens"]
    assert len(outcome["loss_curve"]) == 2
    assert (outcome["lean_lora_modules"], outcome["lean_mlp_modules"]) == (7 * 2, 2)  # 2 layers
    assert outcome["allocator"] == ("tcmalloc" if tcmalloc_library() else "system")
    card = json.loads((tmp_path / "adapter" / "training_card.json").read_text())
    assert card["global_step"] == 2

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), tmp_path / "adapter"
    )
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "adapter")
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "头疼"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )  # fmt: skip
    generated = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 5


def test_interrupted_run_resumes_to_the_same_final_step(
    tiny_model: Path, records: Path, tmp_path: Path
) -> None:
    settings = _settings(tiny_model, records, tmp_path, max_steps=3, save_steps=1)
    victim = _run(settings)
    deadline = time.monotonic() + 600
    while not (tmp_path / "checkpoints" / "checkpoint-1" / "trainer_state.json").exists():
        assert victim.poll() is None and time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.2)
    time.sleep(0.5)  # trainer_state.json is written last; let the file close
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "adapter").exists()

    rerun = _run(settings)
    output = rerun.communicate(timeout=600)[0].decode()
    assert rerun.returncode == 0, output[-3000:]
    outcome = _outcome(output)
    assert outcome["resumed_from"] in ("checkpoint-1", "checkpoint-2")
    assert outcome["global_step"] == 3


def test_length_grouped_order_batches_similar_lengths_at_any_size() -> None:
    from ark_assets.lib.training.sft_train import length_grouped_order

    lengths = [900, 1900, 1000, 1800, 950, 1000, 1020, 1700, 990, 930, 1010, 1950]
    settings = SftSettings(
        base_model_path="m", records_path="r", output_dir="o", checkpoint_dir="c", batch_size=4
    )
    order = length_grouped_order(lengths, settings)
    assert sorted(order) == list(range(len(lengths)))

    def useful_ratio(rows: list[int]) -> float:
        batches = [[lengths[i] for i in rows[k : k + 4]] for k in range(0, 12, 4)]
        return sum(lengths) / sum(max(batch) * len(batch) for batch in batches)

    assert useful_ratio(order) > 0.95
    assert useful_ratio(list(range(12))) < 0.7  # the arrival order mixes short and long
    assert order == length_grouped_order(lengths, settings)  # seeded


@pytest.mark.parametrize(
    ("preset", "targets"),
    [("medark", {"q_proj", "v_proj"}), ("ark", "all-linear")],
)
def test_lora_preset_decides_the_adapted_modules(preset: str, targets: object) -> None:
    from ark_assets.lib.training.sft_train import LoraSettings, lora_config

    config = lora_config(LoraSettings.model_validate({"preset": preset}))
    assert config.target_modules == targets  # peft keeps a list of names as a set
    assert (config.r, config.lora_alpha, config.lora_dropout, config.use_rslora) == (
        8, 16, 0.1, True
    )  # fmt: skip


def test_the_medark_preset_refuses_other_lora_values() -> None:
    from ark_assets.lib.training.sft_train import LoraSettings

    with pytest.raises(ValueError, match="leave lora_r, lora_alpha"):
        LoraSettings(preset="medark", r=16)


def test_the_preset_reaches_the_trainer_settings() -> None:
    settings = SftSettings.model_validate(
        {"base_model_path": "m", "records_path": "r", "output_dir": "o", "checkpoint_dir": "c",
         "lora": {"preset": "medark", "r": 8, "alpha": 16, "dropout": 0.1, "use_rslora": True}}
    )  # fmt: skip
    assert settings.lora.target_modules == ["q_proj", "v_proj"]
