"""Ingest benchmark: ark-assets' ingest + validate + tag into DuckDB vs a bare parse-and-hash loop.

    python -m ark_assets.bench.ingest [--dialogues 100000]

Each measurement runs in its own process (so peak RSS is its own) on the same generated file.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from ark_assets.bench.report import machine_description, write_section
from ark_assets.lib.hashing import medark_key, sha256_bytes
from ark_assets.lib.ingest.batches import ingest_batch
from ark_assets.lib.ingest.dialogues import Limits
from ark_assets.lib.ingest.tables import TAGGED_DIALOGUES
from ark_assets.lib.ingest.tagging import tag_frames
from ark_assets.lib.tables import frame
from ark_assets.lib.warehouse import connect
from ark_assets.testing.dialogues import write_jsonl


def bare_loop(path: Path) -> int:
    """The floor: json.loads each line and hash its first turn the MedArk way."""
    keys = set()
    with path.open("rb") as handle:
        for line in handle:
            keys.add(medark_key(json.loads(line)["turns"][0]))
    return len(keys)


def ark_ingest(path: Path, database: Path, phases: dict[str, float]) -> int:
    """What a batch costs in ark-assets minus Dagster: parse, validate, tag, store."""
    clock = time.perf_counter()
    data = path.read_bytes()
    batch = "bench"
    frames = ingest_batch(batch, path.name, data, sha256_bytes(data), Limits(), datetime.now(UTC))
    phases["parse + validate + rows"] = time.perf_counter() - clock
    clock = time.perf_counter()
    tagged, collisions = tag_frames(batch, frames.accepted, frame([], TAGGED_DIALOGUES))
    phases["tag"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with connect(database) as conn:
        conn.execute("create schema if not exists ark")
        for name, table in (
            ("raw_dialogues", frames.accepted),
            ("quarantined_records", frames.quarantined),
            ("tagged_dialogues", tagged),
            ("tag_collisions", collisions),
        ):
            arrow = table.to_arrow()  # noqa: F841  (read by name in the SQL below)
            conn.execute(f"create or replace table ark.{name} as select * from arrow")
    phases["store (DuckDB, committed)"] = time.perf_counter() - clock
    return tagged.height


def _measure(kind: str, path: Path, database: Path) -> dict:
    import pyarrow  # noqa: F401  (loaded once per process in a code server; not per batch)

    phases: dict[str, float] = {}
    start = time.perf_counter()
    count = bare_loop(path) if kind == "bare" else ark_ingest(path, database, phases)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "kind": kind,
        "dialogues": count,
        "seconds": seconds,
        "peak_rss_mib": peak_kib / 1024,
        "phases": phases,
    }


def _in_subprocess(kind: str, path: Path, database: Path) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ark_assets.bench.ingest",
            "--measure",
            kind,
            str(path),
            str(database),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dialogues", type=int, default=100_000)
    parser.add_argument("--measure", nargs=3, metavar=("KIND", "FILE", "DB"))
    args = parser.parse_args()
    if args.measure:
        kind, path, database = args.measure
        print(json.dumps(_measure(kind, Path(path), Path(database))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = write_jsonl(Path(tmp) / "bench.jsonl", args.dialogues)
        bare = _in_subprocess("bare", path, Path(tmp) / "unused.duckdb")
        ark = _in_subprocess("ark", path, Path(tmp) / "warehouse.duckdb")
        size_mb = path.stat().st_size / 1e6
    ratio = ark["seconds"] / bare["seconds"]
    phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in ark["phases"].items())
    rows = [
        ("bare loop: json.loads + MedArk hash", bare),
        ("ark-assets: ingest + validate + tag → DuckDB", ark),
    ]
    table = "\n".join(
        f"| {label} | {m['dialogues']:,} | {m['seconds']:.2f} | "
        f"{args.dialogues / m['seconds']:,.0f} | {m['peak_rss_mib']:,.0f} |"
        for label, m in rows
    )
    body = f"""## Ingest: {args.dialogues:,} generated dialogues ({size_mb:.0f} MB JSONL)

Command: `python -m ark_assets.bench.ingest --dialogues {args.dialogues}` (part of `make bench`)
Machine: {machine_description()}; Python {platform.python_version()}

| path | dialogues out | seconds | dialogues/s | peak RSS MiB |
|---|---:|---:|---:|---:|
{table}

Where the ark-assets time goes: {phases}.

Ratio ark-assets / bare loop: **{ratio:.2f}×** (goal ≤ 2×). Both run in their own process on
the same file, in the same `make bench` run. The ark-assets path is the code the
`raw_dialogues` and `tagged_dialogues` assets call, without Dagster's per-run overhead
(a few seconds per run, independent of batch size) and without the Great Expectations checks.
"""
    write_section("ingest", body)
    print(body)


if __name__ == "__main__":
    main()
