"""`make bench`: every benchmark in turn, each writing its section of docs/benchmarks.md."""

import subprocess
import sys

BENCHMARKS = (
    ["ark_assets.bench.ingest"],
    ["ark_assets.bench.knowledge"],
    ["ark_assets.bench.synthesis"],
    ["ark_assets.bench.sft"],  # trains on the demo's records: run after `make demo`
)

if __name__ == "__main__":
    failed = [
        module[0]
        for module in BENCHMARKS
        if subprocess.run([sys.executable, "-m", *module], check=False).returncode != 0
    ]
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")
