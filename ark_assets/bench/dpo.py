"""DPO throughput: MedArk's recipe (batch 1, gradient checkpointing) vs ours, same pairs, same run.

    python -m ark_assets.bench.dpo [--pairs 16] [--base-model PATH] [--adapter DIR]
        [--pairs-file PARQUET] [--device cpu|cuda] [--model smollm2|qwen2.5-1.5b-random]

Every recipe runs the real trainer (``python -m ark_assets.lib.training.dpo_train``) in its own
process, on the same pairs with the same seed, learning rate (5e-7), beta (0.08) and one epoch
over the pairs; trl's preference collator pads each batch to its longest row (prompt + chosen and
prompt + rejected are two rows), so at batch 1 the only padding is the gap between the two
completions. We report useful (non-pad) tokens per processed token and useful tokens per second.

Pairs: the demo's ``ark.dpo_triples`` (prompt, chosen, rejected) from the warehouse, after
``make demo``, or ``--pairs-file`` (a parquet with those three columns, e.g. exported for a
machine without the demo); fewer than ``--pairs`` are cycled, and the report says so.

Model: ``smollm2`` is the demo's base model (``--base-model``, default under ``data/models/base``)
with the newest demo SFT adapter (``--adapter``, default the newest under
``data/artifacts/adapters/sft``); ``qwen2.5-1.5b-random`` is a random-weight Qwen2.5-1.5B-shaped
model with the exact Qwen2.5 tokenizer and a random SFT LoRA adapter on it (for CUDA: the shape
users train, no download). Throughput does not depend on the weights; the pairs are text, so
they are re-tokenized by whichever model's tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ark_assets.bench.report import machine_description, write_section
from ark_assets.defs.resources import data_dir
from ark_assets.lib.ingest.inbox import safe_name
from ark_assets.lib.training import SMOLLM2
from ark_assets.lib.training.allocator import SYSTEM_ALLOCATOR_ENV

COMMAND = "python -m ark_assets.bench.dpo"
MODELS = ("smollm2", "qwen2.5-1.5b-random")
SEED = 20250626
LEARNING_RATE = 5e-7
BETA = 0.08
MAX_LENGTH = 2048  # dpo_train's default and dpo_pairs' filter
MEDARK = "MedArk recipe (batch 1, gradient checkpointing)"
RECIPES: dict[str, dict[str, Any]] = {
    MEDARK: {"batch_size": 1, "gradient_checkpointing": True},
    "ark-assets (batch 1, no checkpointing)": {"batch_size": 1, "gradient_checkpointing": False},
    "ark-assets batched (batch 4, no checkpointing)": {
        "batch_size": 4, "gradient_checkpointing": False,
    },
}  # fmt: skip
OPTIONAL = {"ark-assets batched (batch 4, no checkpointing)"}  # reported as failed, not fatal


def load_triples(pairs_file: Path | None) -> pl.DataFrame:
    """The pairs to train on: ``pairs_file``'s, else the demo warehouse's ``ark.dpo_triples``."""
    if pairs_file is not None:
        if not pairs_file.exists():
            raise SystemExit(f"bench.dpo: --pairs-file {pairs_file} does not exist")
        triples = pl.read_parquet(pairs_file, columns=["prompt", "chosen", "rejected"])
    else:
        database = data_dir() / "warehouse.duckdb"
        if not database.exists():
            raise SystemExit(
                f"bench.dpo trains on the demo's DPO triples: no {database}, run `make demo` first"
            )
        with duckdb.connect(str(database), read_only=True) as conn:
            found = conn.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = 'ark' and table_name = 'dpo_triples'"
            ).fetchone()
            if not found or not found[0]:
                raise SystemExit(
                    f"bench.dpo trains on the demo's DPO triples: {database} has no "
                    "ark.dpo_triples, run `make demo` first"
                )
            triples = conn.execute(
                "select prompt, chosen, rejected from ark.dpo_triples "
                "order by conversation_id, turn_index"
            ).pl()
    if triples.is_empty():
        raise SystemExit("bench.dpo: there are no DPO triples to train on: run `make demo` first")
    return triples


def pair_lengths(triples: pl.DataFrame, tokenizer: Any) -> list[int]:
    """Tokens of prompt + the longer completion per pair, as trl tokenizes it (prompt and
    completion together): what dpo_train compares with ``max_length``."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return [
        max(count(row["prompt"] + row["chosen"]), count(row["prompt"] + row["rejected"]))
        for row in triples.iter_rows(named=True)
    ]


def take(triples: pl.DataFrame, count: int) -> tuple[pl.DataFrame, bool]:
    """The first ``count`` pairs, cycling through them when there are fewer; and whether cycled."""
    if triples.height >= count:
        return triples.head(count), False
    repeats = -(-count // triples.height)
    return pl.concat([triples] * repeats).head(count), True


def newest_adapter() -> Path | None:
    cards = sorted(
        (data_dir() / "artifacts" / "adapters" / "sft").glob("*/training_card.json"),
        key=lambda card: card.stat().st_mtime,
    )
    return cards[-1].parent if cards else None


def random_sft_adapter(base: Path, target: Path, seed: int = 1) -> Path:
    """Our LoRA on ``base`` with random B matrices, so the SFT policy differs from the base
    (a fresh LoRA is zero, and the reference would then be the base model too)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from ark_assets.lib.training.sft_train import LoraSettings, lora_config

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora_config(LoraSettings()))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    model.save_pretrained(str(target))
    return target


def policy(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """The base model and the SFT adapter the DPO continues."""
    if args.model == "qwen2.5-1.5b-random":
        from ark_assets.testing.tiny import save_random_qwen2

        print("building the random Qwen2.5-1.5B-shaped model and its SFT adapter", flush=True)
        base = save_random_qwen2(work / "qwen2.5-1.5b-random", shape="1.5b")
        return base, random_sft_adapter(base, work / "random-sft-adapter")
    base = Path(args.base_model)
    if not (base / "config.json").exists():
        raise SystemExit(f"bench.dpo: no base model at {base}: run `make demo` first")
    adapter = args.adapter or newest_adapter()
    if adapter is None:
        raise SystemExit(
            "bench.dpo continues the demo's SFT adapter: none under "
            f"{data_dir() / 'artifacts' / 'adapters' / 'sft'}, run `make demo` first"
        )
    return base, adapter


def train(name: str, overrides: dict[str, Any], common: dict[str, Any], root: Path) -> dict:
    """One recipe in its own process: dpo_train's metadata, or ``{"failed": why}`` for an
    optional recipe that did not run."""
    from ark_assets.lib.training.dpo_train import DpoSettings

    folder = root / safe_name(name)
    pairs = pl.read_parquet(common["pairs_path"]).height
    settings = DpoSettings.model_validate(
        {
            **common,
            "output_dir": str(folder / "adapter"),
            "checkpoint_dir": str(folder / "checkpoints"),
            "max_steps": -(-pairs // overrides["batch_size"]),  # one epoch, every pair once
            **overrides,
        }
    )
    path = root / f"{safe_name(name)}.json"
    path.write_text(settings.model_dump_json())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
    if name == MEDARK:
        env.update(SYSTEM_ALLOCATOR_ENV)  # MedArk's process: the C library's malloc
    out = subprocess.run(
        [sys.executable, "-m", "ark_assets.lib.training.dpo_train", str(path)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["(no output)"]
        if name not in OPTIONAL:
            sys.stderr.write(out.stderr[-5000:])
            raise SystemExit(f"bench.dpo: {name} failed (exit {out.returncode}): {tail[0]}")
        return {"failed": f"exit {out.returncode}: {tail[0]}"}
    return json.loads([line for line in out.stdout.splitlines() if line.startswith('{"')][-1])


def _losses(result: dict[str, Any]) -> list[float]:
    return [point["loss"] for point in result.get("reward_curve", [])]


def _row(name: str, result: dict[str, Any], medark: dict[str, Any]) -> str:
    if "failed" in result:
        return f"| {name} | failed: {result['failed']} |" + " |" * 10
    ratio = result["useful_tokens_per_s"] / medark["useful_tokens_per_s"]
    return (
        f"| {name} | {result['global_step']} | {result['train_seconds']:.1f} | "
        f"{result['useful_tokens']:,} | {result['processed_tokens']:,} | "
        f"{result['useful_ratio']:.3f} | {result['useful_tokens_per_s']:.1f} | {ratio:.2f}× | "
        f"{result['peak_memory_mib']:,.0f} | {result['final_loss']:.4f} | "
        f"{result['train_loss']:.4f} | {result['reference_max_abs_diff']:.1e} |"
    )


def report(
    results: dict[str, dict[str, Any]],
    *,
    command: str,
    device: str,
    model: str,
    base: str,
    adapter: str,
    available: int,
    pairs: int,
    cycled: bool,
    dropped: int,
    lengths: list[int],
) -> str:
    medark = results[MEDARK]
    ours = results["ark-assets (batch 1, no checkpointing)"]
    memory = "peak CUDA allocated MiB" if device == "cuda" else "peak RSS MiB"
    data = f"{pairs} pairs"
    data += (
        f", cycled from the {available} available (each seen {pairs / available:.1f}× on average)"
        if cycled
        else f" (the first {pairs} of {available} available)"
    )
    if dropped:
        data += f"; {dropped} longer than {MAX_LENGTH} tokens with this tokenizer left out first"
    medark_losses, our_losses = _losses(medark), _losses(ours)
    loss_gap = max(
        (abs(a - b) for a, b in zip(medark_losses, our_losses, strict=False)), default=0.0
    )
    body = [
        f"## DPO throughput on {device}: MedArk's recipe vs ours ({model})",
        "",
        f"Command: `{command}` (after `make demo`; `make bench` runs it with the defaults)",
        f"Machine: {machine_description()}; Python {platform.python_version()}; "
        f"{medark.get('dtype', '?')} on {medark.get('device', device)}; "
        f"trl {medark.get('trl_version', '?')}, peft {medark.get('peft_version', '?')}",
        f"Model: `{Path(base).name}` continuing the SFT LoRA adapter {adapter}; the reference "
        "is the frozen SFT policy (trl's `ref` adapter).",
        f"Data: {data}; tokens of prompt + the longer completion per pair: mean "
        f"{sum(lengths) / max(len(lengths), 1):.0f}, max {max(lengths, default=0)}.",
        f"Every recipe: one epoch over the same pairs, seed {SEED}, learning rate "
        f"{LEARNING_RATE:g}, beta {BETA}, sigmoid loss, cosine schedule; each in its own process, "
        "MedArk's under the C library's malloc, ours under the trainers' default (as reported: "
        + ", ".join(f"{name}: {r.get('allocator', '?')}" for name, r in results.items())
        + ").",
        "",
        f"| recipe | steps | seconds | useful tokens | processed tokens | useful / processed | "
        f"useful tokens/s | vs MedArk's | {memory} | final loss | mean loss | "
        "reference max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_row(name, result, medark) for name, result in results.items()),
        "",
        "Useful tokens count prompt + chosen and prompt + rejected (the policy reads both rows); "
        "processed tokens are the padded batch sizes trl's collator built. The reference "
        "forward reads the same rows again and is in the seconds, not the counts. "
        "Ratio = useful tokens/s against MedArk's recipe in this run.",
        "",
        "Equal quality: the two batch-1 recipes take the same steps on the same pairs in the same "
        "order, and gradient checkpointing recomputes activations without changing the maths, so "
        "their losses should agree step by step: largest per-step loss difference here "
        f"{loss_gap:.2e} over {min(len(medark_losses), len(our_losses))} steps. The batched "
        "recipe takes a quarter of the steps at the same learning rate, so its losses are "
        "comparable only as a mean, not step by step. Reference max abs diff ≈ 0 says the "
        "reference stayed the SFT policy.",
    ]
    return "\n".join(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument(
        "--base-model", help=f"smollm2 only (default: {data_dir()}/models/base/{SMOLLM2})"
    )
    parser.add_argument(
        "--adapter", type=Path, help="smollm2 only: the SFT adapter (default: the demo's newest)"
    )
    parser.add_argument(
        "--pairs-file", type=Path, help="parquet with prompt, chosen, rejected (default: demo's)"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="smollm2", choices=MODELS)
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    if args.model != "smollm2" and (args.base_model or args.adapter):
        parser.error(f"--base-model and --adapter are for --model smollm2, not {args.model}")
    args.base_model = args.base_model or str(data_dir() / "models" / "base" / safe_name(SMOLLM2))
    triples = load_triples(args.pairs_file)
    command = shlex.join([*COMMAND.split(), *sys.argv[1:]])

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="ark-bench-dpo-") as tmp:
        root = Path(tmp)
        base, adapter = policy(args, root)
        tokenizer = AutoTokenizer.from_pretrained(base)
        lengths = pair_lengths(triples, tokenizer)
        fits = pl.Series([length <= MAX_LENGTH for length in lengths])
        dropped = int((~fits).sum())
        if dropped == triples.height:
            raise SystemExit(f"bench.dpo: every pair is longer than {MAX_LENGTH} tokens")
        chosen, cycled = take(triples.filter(fits), args.pairs)
        chosen_lengths, _ = take(pl.DataFrame({"n": lengths}).filter(fits), args.pairs)
        pairs_path = root / "pairs.parquet"
        chosen.write_parquet(pairs_path)
        common = {
            "base_model_path": str(base),
            "sft_adapter_path": str(adapter),
            "pairs_path": str(pairs_path),
            "learning_rate": LEARNING_RATE,
            "beta": BETA,
            "max_length": MAX_LENGTH,
            "save_steps": 10_000,  # no checkpoints inside the timed loop
            "seed": SEED,
            "device": args.device,
        }
        results = {}
        for name, overrides in RECIPES.items():
            results[name] = result = train(name, overrides, common, root)
            print(
                f"{name}: "
                + (
                    result["failed"]
                    if "failed" in result
                    else f"{result['train_seconds']:.1f} s, {result['useful_tokens_per_s']:.1f} "
                    "useful tokens/s"
                ),
                flush=True,
            )
    body = report(
        results,
        command=command,
        device=args.device,
        model=args.model,
        base=str(base),
        adapter=f"`{Path(adapter).name}`"
        if args.model == "smollm2"
        else "(random B matrices; r 8, every projection)",
        available=triples.height - dropped,
        pairs=chosen.height,
        cycled=cycled,
        dropped=dropped,
        lengths=chosen_lengths["n"].to_list(),
    )
    write_section(f"dpo-{args.device}", body)
    print(body)


if __name__ == "__main__":
    main()
