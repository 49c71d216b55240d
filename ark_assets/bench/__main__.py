"""`make bench`: every benchmark in turn, each writing its section of one markdown file."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ark_assets.bench.report import DEFAULT_OUT, OUT_ENV, results_path

BENCHMARKS = (
    ["ark_assets.bench.ingest"],
    ["ark_assets.bench.incremental"],  # a fresh build through sft_records, then one new file
    ["ark_assets.bench.knowledge"],
    ["ark_assets.bench.kb_insert"],  # Chroma's add batch and HNSW settings
    ["ark_assets.bench.phi"],  # with presidio-evaluator's set only where it is installed
    ["ark_assets.bench.synthesis"],
    ["ark_assets.bench.sft"],  # trains on the demo's records: run after `make demo`
    ["ark_assets.bench.dpo"],  # the demo's DPO triples and SFT adapter: after `make demo`
    # The demo's adapter when there is one; 64 prefixes all in one batch (the policy cuts it by
    # prompt length): MedArk's one-at-a-time row alone takes about an hour on 2 cores.
    ["ark_assets.bench.agent"],
    ["ark_assets.bench.evaluation"],
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out",
        type=Path,
        help=f"the results file, created if absent (default: {DEFAULT_OUT} under the working "
        "directory, the checkout's root under make)",
    )
    chosen = parser.parse_args().out
    out = chosen.resolve() if chosen else results_path()
    if out.is_dir():
        sys.exit(f"--out {out} is a directory: name the markdown file to write")
    # Each benchmark runs in its own process (fresh memory and thread pools); all write to `out`.
    env = {**os.environ, OUT_ENV: str(out)}
    failed = [
        module[0]
        for module in BENCHMARKS
        if subprocess.run([sys.executable, "-m", *module], check=False, env=env).returncode != 0
    ]
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")
