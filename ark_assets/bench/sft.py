"""SFT throughput: MedArk's batching recipe vs ours, same model, same examples, same run.

    python -m ark_assets.bench.sft [--examples 32] [--base-model PATH]

MedArk pads every example to 2048 tokens and trains with batch 1 and gradient checkpointing;
ours groups examples of similar length and pads each batch only to its longest member. Both
runs train on the same examples (the demo's train split from the warehouse, after `make demo`)
with the same LoRA settings — ours (every projection), not MedArk's q_proj/v_proj, so that only
the batching differs; we report useful (non-pad) tokens per processed token and useful tokens per
second.
"""

from __future__ import annotations

import argparse
import json
import platform
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

RECIPES: dict[str, dict[str, Any]] = {
    "MedArk recipe (pad to 2048, batch 1, checkpointing)": {
        "batching": "pad_to_max", "batch_size": 1, "gradient_checkpointing": True,
    },
    # On CPU, batch 1 with no padding at all measures best: larger batches gain nothing on two
    # cores (measured: batch 4 with checkpointing ran at MedArk's speed, 14 GB peak). On a GPU
    # the same code takes large length-grouped batches (docs/training.md).
    "ark-assets (no padding: batch 1, exact length, no checkpointing)": {
        "batching": "length_grouped", "batch_size": 1, "gradient_checkpointing": False,
    },
}  # fmt: skip


def _examples(count: int) -> pl.DataFrame:
    database = data_dir() / "warehouse.duckdb"
    if not database.exists():
        raise SystemExit("bench.sft trains on the demo's SFT records: run `make demo` first")
    with duckdb.connect(str(database), read_only=True) as conn:
        frame = conn.execute(
            "select input_ids, prompt_tokens from ark.sft_records where split = 'train' "
            "order by conversation_id, turn_index, step"
        ).pl()
    return frame.head(count)


def _train(name: str, overrides: dict[str, Any], base: Path, records: Path, root: Path) -> dict:
    examples = pl.read_parquet(records).height
    steps = -(-examples // overrides["batch_size"])  # one epoch, every example once
    settings = {
        "base_model_path": str(base),
        "records_path": str(records),
        "output_dir": str(root / safe_name(name) / "adapter"),
        "checkpoint_dir": str(root / safe_name(name) / "checkpoints"),
        "max_steps": steps,
        "save_steps": 10_000,
        "device": "cpu",
        **overrides,
    }
    path = root / f"{safe_name(name)}.json"
    path.write_text(json.dumps(settings))
    out = subprocess.run(
        [sys.executable, "-m", "ark_assets.lib.training.sft_train", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads([line for line in out.stdout.splitlines() if line.startswith('{"')][-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=12)
    parser.add_argument(
        "--base-model", default=str(data_dir() / "models" / "base" / safe_name(SMOLLM2))
    )
    args = parser.parse_args()
    frame = _examples(args.examples)
    lengths = frame["input_ids"].list.len().to_list()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        records = Path(tmp) / "records.parquet"
        frame.write_parquet(records)
        for name, overrides in RECIPES.items():
            results[name] = _train(name, overrides, Path(args.base_model), records, Path(tmp))
    medark, ours = (results[name] for name in RECIPES)
    speedup = ours["useful_tokens_per_s"] / medark["useful_tokens_per_s"]
    table = "\n".join(
        f"| {name} | {r['useful_tokens']:,} | {r['processed_tokens']:,} | {r['useful_ratio']:.3f} | "
        f"{r['train_seconds']:.0f} | {r['useful_tokens_per_s']:.0f} | {r['peak_memory_mib']:,.0f} |"
        for name, r in results.items()
    )
    body = f"""## SFT throughput on CPU: MedArk's recipe vs ours

Command: `python -m ark_assets.bench.sft --examples {args.examples}` (after `make demo`; part of `make bench`)
Machine: {machine_description()}; Python {platform.python_version()}; fp32 on CPU
Model: `{Path(args.base_model).name}` with LoRA r 8 / alpha 16 / rsLoRA on all linear layers in
both runs (our `ark` preset; MedArk adapts q_proj/v_proj only), so only batching differs.
Data: {frame.height} train examples of the demo's `sft_records` (tokens per example: mean
{sum(lengths) / max(len(lengths), 1):.0f}, max {max(lengths, default=0)}), one pass each.

| recipe | useful tokens | processed tokens | useful / processed | seconds | useful tokens/s | peak RSS MiB |
|---|---:|---:|---:|---:|---:|---:|
{table}

Useful-token throughput, ours / MedArk's: **{speedup:.2f}×** (goal on CPU ≥ 3×); useful ratio
ours {ours["useful_ratio"]:.3f} (goal ≥ 0.95). Both runs use trl's fused LM head, which
projects only the labelled positions (the assistant turn) through the vocabulary.

Why not 3× on CPU: compute on two cores scales with processed tokens, so dropping padding can
gain at most processed/useful of MedArk's recipe ({1 / medark["useful_ratio"]:.2f}× here, because SmolLM2's
tokenizer makes these Chinese examples long: mean {sum(lengths) / max(len(lengths), 1):.0f} of 2048 tokens), and dropping
gradient checkpointing about 1.3× more; larger batches gain nothing on CPU (batch 4,
length-grouped, with checkpointing measured 1.01× at 14 GB peak in an earlier run). With
Qwen2.5-tokenized examples (mean ~1,100 tokens, MedArk useful ratio ~0.54) the same recipe has
about twice the headroom; the ≥ 10× goal is a GPU goal (large length-grouped batches,
no recompute), not yet measured: no GPU was available to this session.
"""
    write_section("sft", body)
    print(body)


if __name__ == "__main__":
    main()
