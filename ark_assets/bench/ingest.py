"""Ingest benchmark: ark-assets' ingest + validate + tag into DuckDB vs a bare parse-and-hash loop.

    python -m ark_assets.bench.ingest [--dialogues 100000,400000] [--repeats 3]

Each measurement runs in its own process (so peak RSS is its own) on the same generated file;
the bare loop and ark-assets alternate ``--repeats`` times, and the report takes each path's
median time (one run each swung the 100k ratio between 5.2× and 6.5× on this 2-core machine).
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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from ark_assets.bench.report import machine_description, write_section
from ark_assets.lib.hashing import medark_key, sha256_file
from ark_assets.lib.ingest.batches import (
    INGEST_MEMORY_LIMIT,
    bound_memory,
    store_file,
    tag_stored_batch,
)
from ark_assets.lib.ingest.dialogues import Limits
from ark_assets.lib.ingest.stream import Where, read_chunks
from ark_assets.lib.warehouse import connect
from ark_assets.testing.dialogues import write_jsonl

T = TypeVar("T")
READ_PHASE = "read + validate (chunks)"
STORE_PHASE = "store raw_dialogues (DuckDB, committed)"


def bare_loop(path: Path) -> int:
    """The floor: json.loads each line and hash its first turn the MedArk way."""
    keys = set()
    with path.open("rb") as handle:
        for line in handle:
            keys.add(medark_key(json.loads(line)["turns"][0]))
    return len(keys)


def ark_ingest(path: Path, database: Path, phases: dict[str, float]) -> int:
    """What a batch costs in ark-assets minus Dagster: the ``raw_dialogues`` step (read in
    chunks, validate, store) and the ``tagged_dialogues`` step, through the functions the two
    assets call, each in its own committed transaction."""
    batch = "bench"
    where = Where(batch, path.name, sha256_file(path), datetime.now(UTC))
    clock = time.perf_counter()
    reading = [0.0]
    with connect(database) as conn:
        bound_memory(conn, INGEST_MEMORY_LIMIT)
        chunks = _timed(read_chunks(path, where, Limits()), reading)
        summary = store_file(conn, "ark", where, chunks, keep=lambda rows: rows)
    raw_seconds = time.perf_counter() - clock
    phases[READ_PHASE] = reading[0]
    phases[STORE_PHASE] = raw_seconds - reading[0]
    clock = time.perf_counter()
    with connect(database) as conn:
        bound_memory(conn, INGEST_MEMORY_LIMIT)
        tagged = tag_stored_batch(conn, "ark", batch, keep=lambda rows: rows)
    phases["tag (dialogue_tags; tagged_dialogues is a view)"] = time.perf_counter() - clock
    assert summary.accepted == tagged.tagged, (summary, tagged)
    return tagged.tagged


def _timed(items: Iterator[T], seconds: list[float]) -> Iterator[T]:
    """``items``, adding the time spent producing each one to ``seconds[0]``."""
    while True:
        clock = time.perf_counter()
        item = next(items, None)
        seconds[0] += time.perf_counter() - clock
        if item is None:
            return
        yield item


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
    parser.add_argument(
        "--dialogues",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[100_000, 400_000],
        help="comma-separated sizes (default 100000,400000: the ratio at the first, memory at both)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternating runs of each path per size"
    )
    parser.add_argument("--measure", nargs=3, metavar=("KIND", "FILE", "DB"))
    args = parser.parse_args()
    if args.measure:
        kind, path, database = args.measure
        print(json.dumps(_measure(kind, Path(path), Path(database))))
        return
    runs = []
    for size in args.dialogues:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_jsonl(Path(tmp) / "bench.jsonl", size)
            bare, ark = [], []
            for _ in range(args.repeats):
                bare.append(_in_subprocess("bare", path, Path(tmp) / "unused.duckdb"))
                (Path(tmp) / "warehouse.duckdb").unlink(missing_ok=True)
                ark.append(_in_subprocess("ark", path, Path(tmp) / "warehouse.duckdb"))
            runs.append((size, path.stat().st_size / 1e6, median_run(bare), median_run(ark)))
    body = _report(args.dialogues, runs, args.repeats)
    write_section("ingest", body)
    print(body)


def median_run(measurements: list[dict]) -> dict:
    """The run of median time (its phases with it), with every run's times and the highest peak
    RSS of them all (memory is a bound, so the worst run counts)."""
    ordered = sorted(measurements, key=lambda m: m["seconds"])
    return {
        **ordered[(len(ordered) - 1) // 2],
        "all_seconds": [m["seconds"] for m in measurements],
        "peak_rss_mib": max(m["peak_rss_mib"] for m in measurements),
    }


def _report(sizes: list[int], runs: list[tuple[int, float, dict, dict]], repeats: int) -> str:
    rows = []
    for size, megabytes, bare, ark in runs:
        for label, m in (("bare loop: json.loads + MedArk hash", bare), ("ark-assets", ark)):
            every = ", ".join(f"{seconds:.2f}" for seconds in m["all_seconds"])
            rows.append(
                f"| {size:,} ({megabytes:.0f} MB) | {label} | {m['seconds']:.2f} | {every} | "
                f"{size / m['seconds']:,.0f} | {m['peak_rss_mib']:,.0f} |"
            )
    lines = []
    for size, _, bare, ark in runs:
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in ark["phases"].items())
        lines.append(
            f"- {size:,} dialogues: time ratio **{ark['seconds'] / bare['seconds']:.2f}×** "
            f"(goal ≤ 2×), memory ratio **{ark['peak_rss_mib'] / bare['peak_rss_mib']:.2f}×** "
            f"(goal ≤ 4×); {phases}."
        )
    table = "\n".join(rows)
    summary = "\n".join(lines)
    first, _, first_bare, first_ark = runs[0]
    store, read = first_ark["phases"][STORE_PHASE], first_ark["phases"][READ_PHASE]
    store_ratio, read_ratio = store / first_bare["seconds"], read / first_bare["seconds"]
    return f"""## Ingest: generated dialogues, ark-assets against a bare parse-and-hash loop

Command: `python -m ark_assets.bench.ingest --dialogues {",".join(map(str, sizes))} --repeats
{repeats}` (part of `make bench`). Machine: {machine_description()}; Python {platform.python_version()}

| file | path | median seconds | every run | dialogues/s | peak RSS MiB (highest) |
|---|---|---:|---:|---:|---:|
{table}

{summary}

Each measurement runs in its own process on the same file, in the same run; the two paths
alternate {repeats} times per size, each time ratio is of the medians. The ark-assets path
is the code the `raw_dialogues` and `tagged_dialogues` assets call (`read_chunks` → `store_file`,
then `tag_stored_batch`, each in its committed DuckDB transaction, DuckDB memory capped at
`IngestRules.duckdb_memory_limit`), without Dagster's per-run overhead and without the Great
Expectations checks; landing the file (a copy and its sha256) is not in it.

What the ark-assets path does beyond the bare loop, and what it costs: every text of every turn
is validated (the bare loop reads only the first turn) and goes into two digests (the MedArk key
of the first turn, and the whole dialogue's digest, a `repr` of every text); `turns_json` is
re-encoded; the rows are written to DuckDB and committed (its checkpoint writes the 150 MB of
text per 100,000 dialogues: about half of the store phase). Tagging writes only the ids
(`dialogue_tags`); `tagged_dialogues` is a view joining them to `raw_dialogues`, so the text is
stored once. Levers in place: orjson parsing, the fast path that decides most checks from a
line's bytes, columnar construction, chunked appends by replacement scan (a registered view kept
every chunk alive), tables created once per step (not bound from every chunk's rows), tagging
inside DuckDB with only contested keys through Python and no second copy of the text, a DuckDB
memory cap. Levers tried and not taken: parsing, checking and hashing inside DuckDB (its JSON
functions, string escaping and `sha256`, in a prototype measured once on this machine, took
12.5 s at 100,000 dialogues for what the Python path does in 7.1 s); a larger DuckDB memory cap
(512 MB committed 1 s faster at 100,000 dialogues, and adds its 256 MB to the peak); streaming
every chunk into one `INSERT` (no overlap with parsing, the same commit); decoding with msgspec
into the plain record's shape, types and length limits checked in C (read phase 8.29 / 8.74 s
against 8.09 / 8.26 s for orjson and the checks in Python, two alternating runs: no gain, its
object building is slower than orjson's); putting `json.dumps`' separators back column-wide in
polars (no faster than `bytes.replace` per dialogue: 0.06 against 0.05 s per 5,000); storing
each chunk from a writer thread while the next is parsed (DuckDB and polars let go of the GIL,
but the total rose, 13.98 / 13.76 s against 12.01 / 13.19 s, with 80–100 MiB more at the peak:
the parse slowed by a third contending for the GIL and the cores, CPU time 16.6 s against
14.0 s). Not tried: worker processes for the chunks (each adds its own interpreter's memory to
the step's peak, near the memory goal already; and the step already spends 14 CPU-seconds, so
even a perfect split over two cores would leave it near 3× the loop).

Why 2× is out of reach on this machine: DuckDB's share alone (appending and committing the rows,
{store:.2f} s at {first:,} dialogues in this run) is {store_ratio:.1f}× the whole bare loop, and the
read phase, with its parse and the work the loop does not do (every text checked, two digests
over every text, `turns_json` re-encoded: {read:.2f} s), is {read_ratio:.1f}× the loop by itself.
The largest single step left in the profile is the `repr` behind the whole-dialogue digest
(about 1 s), and that text defines the digest every stored dialogue already has; the rest is
spread over steps of 0.2–0.8 s each.

Peak memory grows with a batch's rows, not with its text, and slowly: the text streams in
chunks under DuckDB's cap, while the tagging step holds every dialogue's keys at once (its record
index and two 64-character digests, to find duplicates within the batch and against other
batches). Measured once apart from this bench, the process's peak after the `raw_dialogues` step
was 474 MiB at 100,000 dialogues and 568 MiB at 400,000, and after tagging 474 and 583 MiB. In
the `raw_dialogues` step at 400,000 (80 chunks) the resident memory rose over the first 30 chunks
and then held (175, 416, 481, 522, 498, 550, 499, 501 MiB at every tenth chunk): a plateau set by
DuckDB's cap and the chunk size, which the 100,000-dialogue file (20 chunks) does not reach.
"""


if __name__ == "__main__":
    main()
