"""The GPU SFT bench, run on CPU with a tiny model: every recipe trains and is measured, and
the script needs nothing but torch, transformers and peft (what a bare CUDA machine has)."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from ark_assets.bench.sft_gpu_data import examples_document
from ark_assets.lib.training.render import examples_for, messages_for
from ark_assets_tests.lib.training.paths import ask_path, tell_path

PACKAGE = Path(__file__).resolve().parents[2] / "ark_assets"
ON_A_BARE_GPU_MACHINE = {"torch", "transformers", "peft"}


def test_the_gpu_bench_trains_and_measures_every_recipe(qwen_tokenizer, tmp_path: Path) -> None:
    examples = [
        (e.n_tokens, e.prompt_tokens)
        for path in (ask_path(), tell_path())
        for e in examples_for(messages_for(path), qwen_tokenizer)[-1:]
    ]
    examples_file = tmp_path / "examples.json"
    examples_file.write_text(json.dumps(examples_document(examples, {"what": "two test paths"})))
    out = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "-m", "ark_assets.bench.sft_gpu", "--device", "cpu", "--tiny",
         "--examples", "2", "--token-budget", "1024", "--examples-file", str(examples_file)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "ARK_BENCH_OUT": str(out)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.splitlines()[-1])["sft_gpu"]
    medark, *ours = summary.values()
    assert len(ours) == 4 and all(isinstance(r, dict) for r in ours), summary
    assert medark["steps"] == 2 and medark["processed_tokens"] == 2048 * medark["timed_steps"]
    for recipe in ours:  # each example alone in its row: no padding, two steps, one timed
        assert recipe["steps"] == 2 and recipe["timed_steps"] == 1
        assert recipe["processed_tokens"] == recipe["useful_tokens"] > 0
    assert "| MedArk's recipe" in run.stdout
    assert not out.exists()  # --tiny writes no section


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != "ark_assets":
        return None
    base = PACKAGE.parent.joinpath(*parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_the_gpu_bench_imports_nothing_but_torch_transformers_and_peft() -> None:
    """Every module the script imports, transitively through ark_assets (packages' __init__
    included): the third-party ones are those the GPU machine has."""
    seen: set[str] = set()
    third_party: dict[str, str] = {}
    pending = ["ark_assets.bench.sft_gpu"]
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            path = _module_file(name)
            if name in seen or path is None or not path.exists():
                continue
            seen.add(name)
            for imported in _imports(path):
                top = imported.split(".")[0]
                if top == "ark_assets":
                    pending.append(imported)
                elif top not in sys.stdlib_module_names:
                    third_party[top] = name
    assert "ark_assets.lib.training.sft_step" in seen
    assert set(third_party) <= ON_A_BARE_GPU_MACHINE, third_party


def test_the_gpu_bench_says_what_to_run_without_its_examples(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ark_assets.bench.sft_gpu", "--device", "cpu", "--tiny",
         "--examples-file", str(tmp_path / "missing.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode != 0 and "ark_assets.bench.sft_gpu_data" in run.stderr
