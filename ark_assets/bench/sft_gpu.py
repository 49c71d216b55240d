"""SFT throughput on a GPU: MedArk's recipe vs ours on a Qwen2.5-1.5B-shaped model, one command.

    make bench-gpu          # python3 -m ark_assets.bench.sft_gpu, on a CUDA machine
    python -m ark_assets.bench.sft_gpu --device cpu --tiny    # the same code, tiny model, seconds

Runs on a bare CUDA machine with torch, transformers (its Trainer brings accelerate) and peft,
from the checkout's root with no install: it imports nothing of ark-assets but
``lib/training/sft_step.py``, ``lib/training/lean_layers.py`` and ``bench/report.py``, which
need nothing else (a test checks).

Model: random weights in the Qwen2.5-1.5B-Instruct shape (``--tiny``: 2 layers, hidden 64), the
full 151,936-token vocabulary; throughput does not depend on the weights. Examples: the lengths
of the demo's train examples as ``sft_records`` renders them with the exact Qwen2.5 tokenizer
(tokens, and prompt tokens: the rest is labelled), from ``data/bench/sft_gpu_examples.json``,
written on the CPU machine by ``python -m ark_assets.bench.sft_gpu_data`` after ``make demo``
(carry ``data/bench`` to the GPU machine); token ids are drawn at random at those lengths.

Recipes, one after the other in this process, on the same examples:

- MedArk's: transformers ``Trainer``, the model's own loss over full-vocabulary logits at every
  position, every example padded to 2048, batch 1, gradient checkpointing, bf16, LoRA r 8 /
  alpha 16 / dropout 0.1 / rsLoRA on q_proj/v_proj;
- ours: a minimal loop (no trl on such machines): examples packed into rows of up to
  ``--token-budget`` tokens with no padding (``sft_step.pack``), attention kept within each
  example (``sft_step.packed_sdpa``: SDPA's causal kernel per example, no flash-attn wheel
  needed), the LM head and loss over labelled positions only in chunks (``sft_step``'s fused
  linear cross-entropy in plain torch: liger-kernel and cut-cross-entropy would have to be
  carried as wheels, and liger's needs Triton kernels a CPU test cannot run), LoRA's dropout
  and the MLP keeping less for backward (``lean_layers``, as ``sft_adapter``), no recompute;
  at MedArk's LoRA targets and at ours, and with one lever put back each (recompute, the
  full-vocabulary loss).

The first ``--warmup-steps`` steps of each recipe are not timed. MFU counts the model FLOPs of
the timed examples (``model_flops``) against the chip's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import peft
import torch
import transformers
from peft import get_peft_model
from transformers import (
    AutoModelForCausalLM,
    Qwen2Config,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    get_cosine_schedule_with_warmup,
)

from ark_assets.bench.report import machine_description, write_section
from ark_assets.lib.training.lean_layers import make_lean
from ark_assets.lib.training.sft_step import (
    IGNORE_INDEX,
    LORA_TARGETS,
    MEDARK_LORA,
    PACKED_ATTENTION,
    causal_lm_loss,
    grouped_order,
    pack,
    pad_to_length,
    peft_lora_config,
    register_packed_attention,
    token_budget_batches,
)

COMMAND = "python3 -m ark_assets.bench.sft_gpu"
DEFAULT_EXAMPLES_FILE = Path("data") / "bench" / "sft_gpu_examples.json"
MEDARK_LENGTH = 2048  # MedArk pads every example to its max length
SEED = 20250626
LEARNING_RATE = 2e-4  # ours (MedArk's 1e-2 diverges for LoRA); throughput does not depend on it
# Dense bf16 peaks from the vendors' datasheets, TFLOP/s (SXM parts); --peak-tflops otherwise.
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}
# A measurement from the issue (H100, MedArk's recipe, Qwen2.5-1.5B): the figure to beat 10×.
H100_MEDARK_REFERENCE = 3236


@dataclass(frozen=True)
class Recipe:
    name: str
    trainer: Literal["medark", "ours"]
    lora_targets: Literal["medark", "ark"]
    recompute: bool
    loss: Literal["full", "labelled"]


MEDARK = Recipe(
    "MedArk's recipe (Trainer, full-vocabulary loss, pad to 2048, batch 1, recompute, LoRA q/v)",
    "medark",
    "medark",
    recompute=True,
    loss="full",
)
RECIPES = (
    MEDARK,
    Recipe("ark-assets at MedArk's LoRA targets (packed, labelled-only loss, no recompute)",
           "ours", "medark", recompute=False, loss="labelled"),
    Recipe("ark-assets (LoRA on every projection)", "ours", "ark", recompute=False,
           loss="labelled"),
    Recipe("ark-assets + recompute (lever put back)", "ours", "ark", recompute=True,
           loss="labelled"),
    Recipe("ark-assets + full-vocabulary loss (lever put back)", "ours", "ark",
           recompute=False, loss="full"),
)  # fmt: skip


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    prompt_tokens: int

    @property
    def feature(self) -> dict[str, list[int]]:
        return {
            "input_ids": self.input_ids,
            "labels": [IGNORE_INDEX] * self.prompt_tokens + self.input_ids[self.prompt_tokens :],
        }

    @property
    def labelled(self) -> int:
        return len(self.input_ids) - self.prompt_tokens


@dataclass
class Measured:
    steps: int
    timed_steps: int
    useful_tokens: int
    processed_tokens: int
    seconds: float
    model_flops: float
    peak_memory_gib: float | None
    tokens_per_row: int | None = None  # ours: the packed rows' budget
    out_of_memory_at: int | None = None  # ours: the budget that ran out of GPU memory first

    @property
    def useful_tokens_per_s(self) -> float:
        return self.useful_tokens / self.seconds

    def mfu(self, peak_tflops: float | None) -> float | None:
        return self.model_flops / self.seconds / (peak_tflops * 1e12) if peak_tflops else None


def model_flops(config: Any, tokens: int, labelled: int) -> float:
    """The FLOPs one example needs, by our count: forward plus the backward's input gradients
    (the frozen base weights take no weight gradient; LoRA's own are negligible at rank 8):
    2× the matmuls' forward, 3× causal attention's (its backward has twice its forward's
    matmuls), 2× the LM head's at the labelled positions only; recompute is not counted."""
    d, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or d // config.num_attention_heads
    q_dim = config.num_attention_heads * head_dim
    kv_dim = config.num_key_value_heads * head_dim
    weights = layers * (2 * d * q_dim + 2 * d * kv_dim + 3 * d * config.intermediate_size)
    attention = layers * 2 * q_dim * tokens * (tokens + 1)  # QKᵀ and PV over the causal half
    head = 2 * d * config.vocab_size * labelled
    return 2 * (2 * weights * tokens) + 3 * attention + 2 * head


def load_examples(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SystemExit(
            f"bench.sft_gpu: no {path}. On the CPU machine, after `make demo`, run "
            "`python -m ark_assets.bench.sft_gpu_data`, then carry data/bench here"
        )
    return json.loads(path.read_text())


def random_examples(recorded: list[list[int]], count: int, config: Any) -> list[Example]:
    """``count`` examples at the recorded ``[tokens, prompt tokens]`` (cycled when there are
    fewer), token ids drawn below the special tokens, in one seeded shuffle."""
    rng = random.Random(SEED)
    examples = []
    for index in range(count):
        tokens, prompt = recorded[index % len(recorded)]
        examples.append(
            Example([rng.randrange(config.bos_token_id) for _ in range(tokens)], prompt)
        )
    order = grouped_order([len(e.input_ids) for e in examples], 1, SEED)
    return [examples[i] for i in order]


def build_model(config: Any, device: str, attention: str) -> Any:
    torch.manual_seed(SEED)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):  # initialised where it trains: seconds for 1.5B on a GPU
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attention)
    return model.to(device)


def lora(model: Any, targets: str) -> Any:
    values = MEDARK_LORA
    config = peft_lora_config(
        values["r"], values["alpha"], values["dropout"], values["use_rslora"],
        LORA_TARGETS[targets],
    )  # fmt: skip
    return get_peft_model(model, config)


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def untimed(warmup: int, steps: int) -> int:
    """Steps left out of the timing: ``warmup``, but at least one step is timed."""
    return min(warmup, steps - 1)


def measure(
    ends: list[float],
    start: float,
    useful: list[int],
    processed: list[int],
    flops: list[float],
    warmup: int,
    device: str,
) -> Measured:
    """The steps after the ``untimed`` ones: from the end of the last untimed step to the end
    of the last step (``ends`` are exact at those two, where the GPU was synchronized)."""
    skip = untimed(warmup, len(ends))
    begin = ends[skip - 1] if skip else start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return Measured(
        steps=len(ends),
        timed_steps=len(ends) - skip,
        useful_tokens=sum(useful[skip : len(ends)]),
        processed_tokens=sum(processed[skip : len(ends)]),
        seconds=ends[-1] - begin,
        model_flops=sum(flops[skip : len(ends)]),
        peak_memory_gib=peak,
    )


class _StepClock(TrainerCallback):
    """Each step's end; the GPU is synchronized only at the steps ``measure`` times from, so
    the host can queue work ahead in between, as it does in a run without the clock."""

    def __init__(self, device: str, synchronized: set[int]) -> None:
        self.device, self.synchronized = device, synchronized
        self.ends: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step in self.synchronized:
            _synchronize(self.device)
        self.ends.append(time.perf_counter())


def run_medark(config: Any, examples: list[Example], device: str, warmup: int) -> Measured:
    model = lora(build_model(config, device, "sdpa"), MEDARK.lora_targets)
    model.enable_input_require_grads()  # as trl does: Trainer misses it (transformers#42489)
    read: list[int] = []  # the examples, in the order the Trainer reads them

    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        read.extend(feature["index"] for feature in features)
        return pad_to_length(features, MEDARK_LENGTH, config.pad_token_id)

    features = [{**example.feature, "index": i} for i, example in enumerate(examples)]
    clock = _StepClock(device, {untimed(warmup, len(features)), len(features)})
    with tempfile.TemporaryDirectory() as tmp:
        arguments = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=1,
            gradient_checkpointing=True,
            bf16=device == "cuda",
            use_cpu=device == "cpu",
            learning_rate=LEARNING_RATE,
            lr_scheduler_type="cosine",
            max_steps=len(features),
            logging_steps=50,
            save_strategy="no",
            report_to="none",
            seed=SEED,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            label_names=["labels"],
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=features,
            data_collator=collate,
            callbacks=[clock],
        )
        _synchronize(device)
        start = time.perf_counter()
        trainer.train()
    steps = [examples[i] for i in read[: len(clock.ends)]]
    return measure(
        clock.ends,
        start,
        [len(e.input_ids) for e in steps],
        [MEDARK_LENGTH] * len(steps),
        [model_flops(config, len(e.input_ids), e.labelled) for e in steps],
        warmup,
        device,
    )


def run_ours(
    recipe: Recipe,
    config: Any,
    examples: list[Example],
    device: str,
    token_budget: int,
    warmup: int,
) -> Measured:
    model = lora(build_model(config, device, PACKED_ATTENTION), recipe.lora_targets)
    make_lean(model)  # as sft_adapter: LoRA's dropout and the MLP keep less for backward
    if recipe.recompute:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, fused=device == "cuda")
    lengths = [len(e.input_ids) for e in examples]
    batches = token_budget_batches(range(len(examples)), lengths, token_budget)
    schedule = get_cosine_schedule_with_warmup(optimizer, 0, len(batches))
    ends: list[float] = []
    _synchronize(device)
    start = time.perf_counter()
    synchronized = {untimed(warmup, len(batches)), len(batches)}
    for step, batch in enumerate(batches, start=1):
        inputs = {
            name: tensor.to(device)
            for name, tensor in pack([examples[i].feature for i in batch]).items()
        }
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            if recipe.loss == "labelled":
                loss = causal_lm_loss(model, inputs)
            else:
                loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)  # as Trainer does by default
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step in synchronized:
            _synchronize(device)
        ends.append(time.perf_counter())
    useful = [sum(lengths[i] for i in batch) for batch in batches]
    measured = measure(
        ends,
        start,
        useful,
        useful,  # a packed row holds no padding
        [sum(model_flops(config, lengths[i], examples[i].labelled) for i in b) for b in batches],
        warmup,
        device,
    )
    measured.tokens_per_row = token_budget
    return measured


def peak_tflops(device: str, chosen: float | None) -> float | None:
    if chosen is not None or device != "cuda":
        return chosen
    name = torch.cuda.get_device_name()
    return next((peak for chip, peak in PEAK_BF16_TFLOPS.items() if chip in name), None)


def _batch(recipe: Recipe, m: Measured) -> str:
    if recipe.trainer == "medark":
        return f"1 × {MEDARK_LENGTH:,} padded"
    reduced = f" ({m.out_of_memory_at:,} ran out of memory)" if m.out_of_memory_at else ""
    return f"packed ≤ {m.tokens_per_row:,}{reduced}"


def report(
    args: argparse.Namespace,
    results: dict[Recipe, Measured | str],
    examples: list[Example],
    document: dict[str, Any],
    peak: float | None,
) -> str:
    medark, ours = results[MEDARK], results[RECIPES[2]]
    assert isinstance(medark, Measured) and isinstance(ours, Measured)  # else main() stopped
    rows = []
    for recipe, m in results.items():
        if isinstance(m, str):
            rows.append(f"| {recipe.name} | {m} |" + " |" * 9)
            continue
        mfu = m.mfu(peak)
        rows.append(
            f"| {recipe.name} | {_batch(recipe, m)} | {m.steps} ({m.timed_steps} timed) | "
            f"{m.useful_tokens:,} | {m.processed_tokens:,} | "
            f"{m.useful_tokens / m.processed_tokens:.3f} | {m.seconds:.1f} | "
            f"{m.useful_tokens_per_s:,.0f} | "
            f"**{m.useful_tokens_per_s / medark.useful_tokens_per_s:.2f}×** | "
            f"{'—' if mfu is None else f'{mfu:.1%}'} | "
            f"{'—' if m.peak_memory_gib is None else f'{m.peak_memory_gib:.1f}'} |"
        )
    lengths = [len(e.input_ids) for e in examples]
    labelled = [e.labelled for e in examples]
    if args.device == "cuda":
        machine = f"{torch.cuda.get_device_name()}, bf16"
    else:
        machine = f"{machine_description()}, fp32"
    versions = (
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"peft {peft.__version__}"
    )
    peak_text = (
        "no dense bf16 peak known for this device (--peak-tflops)"
        if peak is None
        else f"against {peak:,.0f} TFLOP/s dense bf16"
    )
    shape = "tiny" if args.tiny else "1.5B"
    flags = " --device cpu --tiny" if args.tiny else ""
    command = (
        f"{COMMAND} --examples {args.examples} --token-budget {args.token_budget} "
        f"--warmup-steps {args.warmup_steps}{flags}"
    )
    return f"""## SFT throughput on a GPU: MedArk's recipe vs ours (Qwen2.5-{shape} shape)

Command: `make bench-gpu` (`{command}`), one process, every recipe in the same run.
Machine: {machine}; {versions}. MFU: {peak_text}.
Model: random weights in the Qwen2.5-{shape} shape, vocabulary 151,936; LoRA r 8 / alpha 16 /
dropout 0.1 / rsLoRA; learning rate {LEARNING_RATE} cosine.
Data: {len(examples)} examples at the lengths of {document["source"]["what"]}
(tokens: mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}; labelled: mean
{sum(labelled) / len(labelled):.0f}), random token ids, one pass. Untimed warm-up steps per
recipe: {args.warmup_steps}.

| recipe | batch | steps | useful tokens | processed tokens | useful / processed | seconds | useful tokens/s | vs MedArk | MFU | peak GiB |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Ours / MedArk's recipe: **{ours.useful_tokens_per_s / medark.useful_tokens_per_s:.2f}×**
useful tokens/s (goal ≥ 10×; issue 15 measured MedArk's recipe at
{H100_MEDARK_REFERENCE:,} useful tokens/s on an H100). MFU counts the same model FLOPs for
every recipe (`model_flops`: forward and the input-gradient backward, LM head at labelled
positions only, recompute and padding not counted), so it compares rows. Random weights: the
losses say nothing of quality here; `bench.sft` checks equal quality on CPU with the real
student.
"""


def _run(
    recipe: Recipe, config: Any, examples: list[Example], args: argparse.Namespace
) -> Measured | str:
    """One recipe's measurement; ours halves its rows' token budget when it runs out of GPU
    memory (the row says so), down to MedArk's 2048."""
    if recipe.trainer == "medark":
        return run_medark(config, examples, args.device, args.warmup_steps)
    budget, failed_at = args.token_budget, None
    while True:
        try:
            measured = run_ours(recipe, config, examples, args.device, budget, args.warmup_steps)
        except torch.cuda.OutOfMemoryError:
            failed_at = failed_at or budget
        else:
            measured.out_of_memory_at = failed_at
            return measured
        if budget <= MEDARK_LENGTH:
            return f"out of GPU memory at {budget:,} tokens per row"
        budget //= 2
        gc.collect()  # the failed run's tensors, freed with its traceback
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="2-layer model: the CPU test's mode")
    parser.add_argument("--examples", type=int, help="default 384; 4 with --tiny")
    parser.add_argument("--examples-file", type=Path, default=DEFAULT_EXAMPLES_FILE)
    parser.add_argument("--token-budget", type=int, help="tokens per packed row (16384; 4096)")
    parser.add_argument("--warmup-steps", type=int, help="untimed steps per recipe (3; 1)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak for MFU")
    args = parser.parse_args()
    if args.examples is None:
        args.examples = 4 if args.tiny else 384
    if args.token_budget is None:
        args.token_budget = 4096 if args.tiny else 16384
    if args.warmup_steps is None:
        args.warmup_steps = 1 if args.tiny else 3
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench.sft_gpu: no CUDA device (use --device cpu --tiny to try it here)")
    document = load_examples(args.examples_file)
    config = Qwen2Config.from_dict(document["configs"]["tiny" if args.tiny else "1.5b"])
    examples = random_examples(document["examples"], args.examples, config)
    register_packed_attention()
    results: dict[Recipe, Measured | str] = {}
    for recipe in RECIPES:
        print(f"bench.sft_gpu: {recipe.name} ...", flush=True)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        results[recipe] = outcome = _run(recipe, config, examples, args)
        gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()
        if isinstance(outcome, str):
            print(f"  {outcome}", flush=True)
        else:
            print(f"  {outcome.useful_tokens_per_s:,.0f} useful tokens/s", flush=True)
    body = report(args, results, examples, document, peak_tflops(args.device, args.peak_tflops))
    if not args.tiny:
        write_section("sft-gpu", body)
    print(body)
    summary = {
        recipe.name: outcome if isinstance(outcome, str) else {
            **vars(outcome), "useful_tokens_per_s": outcome.useful_tokens_per_s,
        }
        for recipe, outcome in results.items()
    }  # fmt: skip
    print(json.dumps({"sft_gpu": summary}))


if __name__ == "__main__":
    main()
