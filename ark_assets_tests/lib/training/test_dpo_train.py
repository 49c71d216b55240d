"""The DPO trainer on a tiny random-weight Qwen2 and a randomised SFT adapter: trains against the
frozen SFT policy, saves only the trained adapter, reloads, generates, resumes after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch

from ark_assets.lib.synthesis.models import Turn
from ark_assets.lib.training.dpo_train import DpoSettings, main
from ark_assets.lib.training.render import (
    AskAction,
    TellAction,
    call_message,
    completion,
    dialogue_messages,
)
from ark_assets.lib.training.sft_train import LoraSettings, lora_config

SERIES = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
DIALOGUES = [
    ("zh", [Turn(patient="医生你好，我头疼。", doctor="疼了多久了？")], "三天了，晚上睡不好。"),
    ("zh", [], "孩子发烧两天了，怎么办？"),
    ("en", [], 'I have had a "dry" cough for a week.'),
    ("en", [Turn(patient="My knee hurts.", doctor="Since when?")], "Since I fell last week."),
]


@pytest.fixture(scope="module")
def sft_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter whose B matrices are random, so the SFT policy differs from the base
    (a fresh LoRA is zero: it would make a base-model reference look right)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    config = lora_config(LoraSettings(r=4, alpha=8, dropout=0.0))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    target = tmp_path_factory.mktemp("sft-adapter")
    model.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def pairs(qwen_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pairs in the shapes dpo_pairs writes (ChatML through the generation prompt, tool calls
    through ``<|im_end|>``): the doctor's ask as chosen, a tell as rejected (the other way round
    for the cough). The prompt leaves out the tool schemas, ~600 of its ~730 tokens: on CPU trl
    scores every position against the 152k vocabulary, and what the prompt says does not matter
    to the trainer."""
    ask = AskAction(
        reasoning="需要体温信息才能判断。", disease=[], symptom=["发烧"], medcine=[], surgery=[],
        body_part=[], medical_check=["体温"], concept=[], text="有没有发烧？量过体温吗？",
    )  # fmt: skip
    tell = TellAction(reasoning="Enough is known.", text="Drink warm fluids and rest.")
    rows = []
    for index, (language, history, patient) in enumerate(DIALOGUES):
        messages = dialogue_messages(language, history, patient)
        chosen, rejected = (tell, ask) if index == 2 else (ask, tell)
        prompt = qwen_tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        _, chosen_text = completion([*messages, call_message(chosen)], qwen_tokenizer)
        _, rejected_text = completion([*messages, call_message(rejected)], qwen_tokenizer)
        rows.append({"prompt": prompt, "chosen": chosen_text, "rejected": rejected_text})
    target = tmp_path_factory.mktemp("pairs") / "dpo_triples.parquet"
    pl.DataFrame(rows).write_parquet(target)
    return target


def _settings(tiny_model: Path, sft_adapter: Path, pairs: Path, root: Path, **overrides) -> Path:
    fields = {
        "base_model_path": str(tiny_model),
        "sft_adapter_path": str(sft_adapter),
        "pairs_path": str(pairs),
        "output_dir": str(root / "adapter"),
        "checkpoint_dir": str(root / "checkpoints"),
        "learning_rate": 1e-3,  # so that three steps move the tiny policy
        "save_steps": 2,
    }
    settings = DpoSettings.model_validate({**fields, **overrides})
    path = root / "settings.json"
    path.write_text(settings.model_dump_json())
    return path


def _run(settings: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ark_assets.lib.training.dpo_train", str(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")},
    )


def _outcome(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith('{"')][-1])


def _first_pair_logits(model, pairs: Path, tokenizer) -> torch.Tensor:
    """Logits at the positions predicting the first pair's chosen completion."""
    first = pl.read_parquet(pairs).row(0, named=True)
    prompt = tokenizer(first["prompt"], add_special_tokens=False)["input_ids"]
    ids = tokenizer(first["prompt"] + first["chosen"], add_special_tokens=False)["input_ids"]
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits
    return logits[0, len(prompt) - 1 : -1]


def test_trains_against_the_frozen_sft_policy_and_saves_the_trained_adapter(
    tiny_model: Path,
    sft_adapter: Path,
    pairs: Path,
    qwen_tokenizer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    main([str(_settings(tiny_model, sft_adapter, pairs, tmp_path, max_steps=2))])
    outcome = _outcome(capsys.readouterr().out)
    assert outcome["global_step"] == 2 and outcome["resumed_from"] is None
    assert outcome["pairs"] == 4
    assert 0 < outcome["useful_tokens"] <= outcome["processed_tokens"]

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def load(adapter: Path | None):
        base = AutoModelForCausalLM.from_pretrained(tiny_model)
        return PeftModel.from_pretrained(base, adapter) if adapter else base

    base_logits = _first_pair_logits(load(None), pairs, qwen_tokenizer)
    sft_logits = _first_pair_logits(load(sft_adapter), pairs, qwen_tokenizer)
    # A base-model reference would show at least this far from the SFT policy.
    assert (sft_logits - base_logits).abs().max() > 0.05
    assert outcome["reference_max_abs_diff"] < 1e-5
    # The reference adapter trl trained against, as its last checkpoint saved it, is the SFT one.
    reference = tmp_path / "checkpoints" / "checkpoint-2" / "ref"
    reference_logits = _first_pair_logits(load(reference), pairs, qwen_tokenizer)
    assert (reference_logits - sft_logits).abs().max() < 1e-5

    adapter = tmp_path / "adapter"
    assert not (adapter / "ref").exists()  # only the trained adapter is saved
    trained = load(adapter)
    assert (_first_pair_logits(trained, pairs, qwen_tokenizer) - sft_logits).abs().max() > 0
    assert outcome["policy_max_abs_diff"] > 0
    prompt = qwen_tokenizer(pl.read_parquet(pairs)["prompt"][0], return_tensors="pt")
    generated = trained.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 5

    assert [point["step"] for point in outcome["reward_curve"]] == [1, 2]
    assert all(set(SERIES) <= point.keys() for point in outcome["reward_curve"])
    assert outcome["final_loss"] == outcome["reward_curve"][-1]["loss"]
    import trl

    card = json.loads((adapter / "training_card.json").read_text())
    assert card["trl_version"] == outcome["trl_version"] == trl.__version__
    assert "frozen SFT policy" in card["reference_policy"]
    assert card["global_step"] == 2
    plot = Path(outcome["reward_plot_path"])
    assert plot == adapter / "reward_curves.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interrupted_run_resumes_to_the_same_final_step(
    tiny_model: Path, sft_adapter: Path, pairs: Path, tmp_path: Path
) -> None:
    settings = _settings(tiny_model, sft_adapter, pairs, tmp_path, max_steps=2, save_steps=1)
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
    assert outcome["global_step"] == 2
    # The curve comes from the trainer state, so the steps before the kill are kept.
    assert [point["step"] for point in outcome["reward_curve"]] == [1, 2]
    assert outcome["reference_max_abs_diff"] < 1e-5


def test_a_pair_over_max_length_is_refused_before_training(
    tiny_model: Path, sft_adapter: Path, pairs: Path, tmp_path: Path
) -> None:
    settings = _settings(tiny_model, sft_adapter, pairs, tmp_path, max_length=64)
    with pytest.raises(ValueError, match="exceed max_length=64 tokens"):
        main([str(settings)])
    assert not list((tmp_path / "checkpoints").glob("checkpoint-*"))
    assert not (tmp_path / "adapter").exists()
