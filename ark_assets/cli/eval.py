"""``ark eval --adapter PATH --items FILE``: the evaluation of one adapter on one test file, from
the command line — the same importers, agent loop, metrics and report as the evaluation assets.

The file is any eval-inbox format (MedArk's items, a result file, MedRAG's, ``records.pkl``): our
adapter answers its items through the agent loop; a file's own replies are a second system. The
report (markdown + HTML + plots) goes to ``--out`` (default
``data/artifacts/reports/eval-cli/<file>/``).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from ark_assets.cli.agent import open_agent_for
from ark_assets.defs.knowledge.resources import build_knowledge_resources
from ark_assets.defs.resources import build_resources, data_dir
from ark_assets.lib.agent.loop import LoopSettings
from ark_assets.lib.agent.policy import Decoding
from ark_assets.lib.evaluation.importers import read_eval_file
from ark_assets.lib.evaluation.items import EvalItem, Prediction
from ark_assets.lib.evaluation.predict import agent_predictions, sample_items
from ark_assets.lib.evaluation.report import ReportMeta, render_report
from ark_assets.lib.evaluation.scoring import METRICS, dialogue_lookup, kb_index, score_all
from ark_assets.lib.evaluation.scoring import summarise as summarise_scores
from ark_assets.lib.evaluation.tables import imported_frames, prediction_of

_NO_DOCUMENTS = pl.DataFrame(schema={"doc_id": pl.Utf8, "question": pl.Utf8, "answer": pl.Utf8})


def eval_command(args: argparse.Namespace) -> None:
    path: Path = args.items
    result = read_eval_file(path.name, path.read_bytes())
    for rejection in result.rejections[:20]:
        print(f"  quarantined {rejection.record_index}: {rejection.rule}: {rejection.message}")
    if not result.items:
        raise SystemExit(f"ark eval: {path} holds no readable item")
    frames = imported_frames(result, path.name, path.name, "", datetime.now(UTC))
    theirs = [(r["test_set"], prediction_of(r)) for r in frames.predictions.iter_rows(named=True)]
    ours = _our_predictions(args, sample_items(result.items, args.items_per_set, args.seed))
    with dg.build_resources({**build_resources(), **build_knowledge_resources()}) as built:
        documents = built.warehouse.read("kb_sources", "select * from {table}")
        embed = built.embedder.build().embed_documents
    kb = kb_index(documents if documents is not None else _NO_DOCUMENTS)
    lookup = dialogue_lookup({}, {})  # no later turns for a published file: AUV is left out
    scored = score_all(result.items, ours + theirs, dialogue_of=lookup, kb=kb, embed=embed)
    summary = summarise_scores(scored)
    out = args.out or data_dir() / "artifacts" / "reports" / "eval-cli" / path.stem
    meta: ReportMeta = {"run_id": "ark eval", "metric_definitions": METRICS, "mode": "offline"}
    files = render_report(summary, scored.confusion, meta, out)
    for row in summary.filter(pl.col("metric") == "accuracy").iter_rows(named=True):
        print(
            f"  {row['test_set']:<20} {row['system']:<28} accuracy {row['value']:.3f} n={row['n']}"
        )
    print(f"report: {files.html}")


def _our_predictions(
    args: argparse.Namespace, items: list[EvalItem]
) -> list[tuple[str, Prediction]]:
    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    settings = LoopSettings(grammar=args.grammar, decoding=decoding)
    system = f"adapter@{args.adapter.name[:12]}" if args.adapter else "base_model"
    with open_agent_for(args, settings) as loop:
        predictions = agent_predictions(loop, system, items)
    return [(item.test_set, p) for item, p in zip(items, predictions, strict=True)]
