"""Evaluation benchmark: the offline metrics over 2,750 items × 3 systems on CPU.

    python -m ark_assets.bench.evaluation [--items 2750]

2,750 items is MedArk's test-set size (2,451 zh_med + 299 non_zh_med items per side). They are
cut from the bundled sample dialogues (every prefix, repeated with a distinct item id until the
count is reached), split ask/tell by the question detector. Three systems answer each item with
real text of different quality: the reference itself, the reply of another item, and a fixed
question; no model runs, so the numbers measure ``lib/evaluation/scoring.py`` (action selection,
ask quality, AUV, BM25 support over the bundled knowledge base, embedding similarity with the
hashing embedder) and the bootstrap summary. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import polars as pl

from ark_assets.bench.report import machine_description, write_section
from ark_assets.lib.artifacts import package_data
from ark_assets.lib.evaluation.heldout import heldout_items
from ark_assets.lib.evaluation.items import EvalItem, Prediction
from ark_assets.lib.evaluation.scoring import (
    dialogue_lookup,
    dialogues_by,
    kb_index,
    score_all,
    summarise,
)
from ark_assets.lib.knowledge.embedders import HashingEmbedder
from ark_assets.testing.dialogues import sample_rows

COMMAND = "python -m ark_assets.bench.evaluation"


def _dialogue_rows() -> list[dict[str, Any]]:
    return sample_rows("zh") + sample_rows("en")


def items(count: int) -> list[EvalItem]:
    base = heldout_items(_dialogue_rows(), heldout_percent=100)
    out: list[EvalItem] = []
    while len(out) < count:
        for item in base[: count - len(out)]:
            out.append(replace(item, item_id=f"{item.item_id}-{len(out)}"))
    return out


def predictions(chosen: list[EvalItem]) -> list[tuple[str, Prediction]]:
    out = []
    for index, item in enumerate(chosen):
        other = chosen[(index * 7 + 3) % len(chosen)]
        for system, text in (
            ("reference", item.reference),
            ("another_reply", other.reference),
            ("fixed_question", "还有哪里不舒服？" if item.language == "zh" else "Anything else?"),
        ):
            out.append((item.test_set, Prediction(system, item.item_id, text, None, "detector")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=2750)
    args = parser.parse_args()
    chosen = items(args.items)
    answered = predictions(chosen)
    documents = pl.read_ndjson(package_data("samples", "kb_qa_sample.jsonl"))
    documents = documents.with_row_index("doc_id").with_columns(pl.col("doc_id").cast(pl.Utf8))
    kb = kb_index(documents)
    dialogues = pl.DataFrame(_dialogue_rows())
    lookup = dialogue_lookup(dialogues_by(dialogues, "conversation_id"), {})
    embedder = HashingEmbedder()
    started = time.perf_counter()
    scored = score_all(chosen, answered, dialogue_of=lookup, kb=kb, embed=embedder.embed_documents)
    scoring_s = time.perf_counter() - started
    started = time.perf_counter()
    summary = summarise(scored)
    summary_s = time.perf_counter() - started
    pairs = len(answered)
    accuracy = (
        summary.filter(pl.col("metric") == "accuracy")
        .group_by("system")
        .agg(pl.col("value").mean())
    )
    write_section(
        "evaluation",
        "\n".join(
            [
                "## Evaluation: offline metrics over MedArk-sized test sets",
                "",
                f"`{COMMAND} --items {args.items}` on {machine_description()}.",
                "",
                f"{args.items} items × 3 systems = {pairs} (item, prediction) pairs; "
                f"{scored.scores.height} per-item scores.",
                "",
                "| stage | seconds | pairs/s | items/s |",
                "|---|---|---|---|",
                f"| per-item scores (all metrics) | {scoring_s:.1f} | {pairs / scoring_s:.0f} | "
                f"{args.items / scoring_s:.0f} |",
                f"| summary (means + 1,000-resample bootstrap per cell) | {summary_s:.1f} | — | — |",
                "",
                "Mean accuracy per system (sanity: the reference scores highest): "
                + ", ".join(
                    f"{s} {v:.3f}" for s, v in sorted(accuracy.iter_rows(), key=lambda r: -r[1])
                )
                + ".",
            ]
        ),
    )
    print(f"{pairs} pairs scored in {scoring_s:.1f} s, summarised in {summary_s:.1f} s")


if __name__ == "__main__":
    main()
