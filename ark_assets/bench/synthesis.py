"""Synthesis benchmark: the Ark loop against an OpenAI-compatible endpoint with 200 ms a call.

    python -m ark_assets.bench.synthesis [--prefixes 40] [--latency 0.2] [--concurrency 8]

Three runs over the same prefixes of the Chinese sample, against a local scripted endpoint that
sleeps ``--latency`` seconds per call (a stand-in for a remote LLM): concurrency 1 with an empty
cache, concurrency N with an empty cache, and concurrency N again with the cache the previous
run filled. Retrieval uses the in-memory retriever, so the numbers measure the teacher path
(HTTP client, retries, cache), not an embedding model. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ark_assets.bench.report import machine_description, write_section
from ark_assets.lib.artifacts import package_data
from ark_assets.lib.hashing import medark_key
from ark_assets.lib.synthesis.backends.openai_backend import OpenAIBackend
from ark_assets.lib.synthesis.cache import TeacherCache
from ark_assets.lib.synthesis.loop import ArkLoop, prefixes
from ark_assets.lib.synthesis.models import Prefix
from ark_assets.lib.synthesis.teacher import Teacher
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets.testing.scripted_endpoint import ScriptedEndpoint

SAMPLES = package_data("samples")
COMMAND = "python -m ark_assets.bench.synthesis"


@dataclass(frozen=True)
class Measurement:
    label: str
    concurrency: int
    seconds: float
    records: int
    calls: int
    cached: int
    peak_in_flight: int

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


def sample_prefixes(limit: int) -> list[Prefix]:
    items: list[Prefix] = []
    for index, line in enumerate((SAMPLES / "dialogues_zh_sample.jsonl").open()):
        turns = json.loads(line)["turns"]
        row = {
            "batch": "bench",
            "conversation_id": f"bench-{index:03d}",
            "medark_key": medark_key(turns[0]),
            "language": "zh",
            "turns_json": json.dumps(turns, ensure_ascii=False),
        }
        items += prefixes(row)
        if len(items) >= limit:
            return items[:limit]
    return items


def measure(
    label: str,
    endpoint: ScriptedEndpoint,
    cache: TeacherCache,
    kb: MemoryRetriever,
    items: list[Prefix],
    concurrency: int,
) -> Measurement:
    backend = OpenAIBackend(model="bench", api_key="bench", base_url=endpoint.base_url)
    teacher = Teacher(backend, cache, max_concurrency=concurrency)
    started = time.perf_counter()
    outcome = ArkLoop(teacher, kb, "bench-kb").run(items)
    seconds = time.perf_counter() - started
    if outcome.failures:
        raise RuntimeError(f"{len(outcome.failures)} failures: {outcome.failures[0].error}")
    totals = teacher.stats.totals()
    return Measurement(
        label, concurrency, seconds, len(outcome.paths), totals.calls, totals.cached,
        teacher.stats.peak_in_flight,
    )  # fmt: skip


def report(results: list[Measurement], latency: float, machine: str) -> str:
    serial, parallel, warm = results
    speedup = parallel.records_per_s / serial.records_per_s
    warm_speedup = parallel.seconds / warm.seconds
    rows = "\n".join(
        f"| {m.label} | {m.concurrency} | {m.records} | {m.seconds:.2f} | {m.records_per_s:.1f} "
        f"| {m.calls} | {m.cached} | {m.peak_in_flight} |"
        for m in results
    )
    return f"""## Synthesis: the Ark loop against a {latency * 1000:.0f} ms-per-call endpoint

`{COMMAND}` on {machine}. A scripted OpenAI-compatible endpoint on 127.0.0.1 answers every
teacher stage validly after {latency * 1000:.0f} ms; the real `openai` backend, teacher, cache and
loop do the rest (in-memory retriever over the bundled KB sample).

| run | concurrency | records | seconds | records/s | calls made | cached | peak in flight |
|---|---|---|---|---|---|---|---|
{rows}

- concurrency {parallel.concurrency} vs 1: **{speedup:.1f}×** records/s (goal ≥ 6×).
- warm cache vs cold at concurrency {parallel.concurrency}: **{warm.calls} calls**,
  **{warm_speedup:.0f}×** faster (goal: 0 calls, ≥ 50×).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=40, help="Dialogue prefixes per run.")
    parser.add_argument("--latency", type=float, default=0.2, help="Seconds per call.")
    parser.add_argument("--concurrency", type=int, default=8, help="The parallel run's cap.")
    args = parser.parse_args()
    items = sample_prefixes(args.prefixes)
    kb = MemoryRetriever(
        json.loads(line) for line in (SAMPLES / "kb_qa_sample.jsonl").read_text().splitlines()
    )
    with tempfile.TemporaryDirectory() as tmp, ScriptedEndpoint(latency_s=args.latency) as server:
        serial_cache = TeacherCache(Path(tmp) / "serial.sqlite")
        parallel_cache = TeacherCache(Path(tmp) / "parallel.sqlite")
        results = [
            measure("cold", server, serial_cache, kb, items, 1),
            measure("cold", server, parallel_cache, kb, items, args.concurrency),
            measure("warm cache", server, parallel_cache, kb, items, args.concurrency),
        ]
        serial_cache.close()
        parallel_cache.close()
    body = report(results, args.latency, machine_description())
    print(body)
    write_section("synthesis", body)


if __name__ == "__main__":
    main()
