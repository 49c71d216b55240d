"""Evaluation: MedArk's metrics on held-out and published test sets, every system side by side."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from ark_assets.defs.agent.resources import PolicyResource
from ark_assets.defs.evaluation.resources import BertScoreResource, EvalInbox
from ark_assets.defs.knowledge.resources import EmbedderResource, VectorStoreResource
from ark_assets.defs.metadata import (
    PHI_DEIDENTIFIED_TAGS,
    column_schema,
    table_metadata,
    table_out,
)
from ark_assets.defs.partitions import eval_files
from ark_assets.defs.progress import loop_progress
from ark_assets.defs.quality import log_rejections, quarantine_output
from ark_assets.defs.resources import ArtifactStore, Warehouse
from ark_assets.defs.synthesis.resources import TeacherResource
from ark_assets.defs.training.resources import BaseModel, latest_adapter
from ark_assets.lib.evaluation.items import Prediction
from ark_assets.lib.evaluation.judge import Judge
from ark_assets.lib.evaluation.judged import BertScorer
from ark_assets.lib.evaluation.tables import (
    EVAL_ITEMS,
    EVAL_QUARANTINE,
    FILE_ITEMS,
    FILE_PREDICTIONS,
    PREDICTIONS,
    imported_frames,
    item_of,
    items_frame,
    predictions_frame,
)
from ark_assets.lib.ingest.inbox import land
from ark_assets.lib.tables import Column, frame

GROUP = "evaluation"
RECORDS_ACCOUNTED = "eval_records_accounted"
ADAPTERS = ("sft_adapter", "dpo_adapter")
_NOT_TRIGGERS = ("heldout_eval_items", "kb_index", "base_model")
# Re-evaluate when a new adapter lands or an eval file is imported — not on every dialogue
# batch (held-out items) or KB rebuild: model runs cost minutes. A DPO adapter not trained yet
# does not hold the evaluation back (it is skipped until it exists).
ON_NEW_ADAPTER_OR_FILE = (
    dg.AutomationCondition.eager()
    .ignore(dg.AssetSelection.assets(*_NOT_TRIGGERS))
    .replace(
        "any_deps_missing",
        dg.AutomationCondition.any_deps_missing().ignore(
            dg.AssetSelection.assets(*_NOT_TRIGGERS, "dpo_adapter")
        ),
    )
    .with_label("after a new adapter or eval file")
)
StepEvents = Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]


@dg.multi_asset(
    outs={
        "eval_items": table_out(
            "The test items of one eval-inbox file (MedArk's published sets, result files, "
            "MedRAG files, records.pkl): history, patient message, reference reply.",
            FILE_ITEMS,
            code_version="1",
            partition_column="eval_file",
        ),
        "eval_quarantine": table_out(
            "Every entry of the file that could not be read (null replies, malformed entries, "
            "an unsafe pickle), with the rule and a fix.",
            EVAL_QUARANTINE,
            code_version="1",
            partition_column="eval_file",
        ),
        "imported_predictions": table_out(
            "The replies a result file carries: another system's answer per item.",
            FILE_PREDICTIONS,
            code_version="1",
            partition_column="eval_file",
        ),
    },
    partitions_def=eval_files,
    group_name=GROUP,
    check_specs=[
        dg.AssetCheckSpec(
            RECORDS_ACCOUNTED,
            asset="eval_items",
            blocking=True,
            description="Entries read = entries accepted + entries quarantined.",
        )
    ],
)
def eval_items(context: dg.AssetExecutionContext, eval_inbox: EvalInbox) -> StepEvents:
    """Reads one evaluation file (landing it on first read) with the importers of MedArk's
    formats; pickles go through a restricted unpickler that executes nothing."""
    from ark_assets.lib.evaluation.importers import read_eval_file

    key = context.partition_key
    name, data, digest = land(key, Path(eval_inbox.path), Path(eval_inbox.landing_path))
    result = read_eval_file(name, data)
    log_rejections(context.log, ((name, r) for r in result.rejections))
    frames = imported_frames(result, key, name, digest, datetime.now(UTC))
    counts = {
        "records_read": result.records_read,
        "accepted": result.records_read - frames.quarantined.height,
        "quarantined": frames.quarantined.height,
        "items": frames.items.height,
    }
    facts = {"kind": result.kind, "system": result.system or ""}
    items = frames.items
    yield dg.Output(
        items, "eval_items", metadata={**table_metadata(items, FILE_ITEMS), **counts, **facts}
    )
    yield quarantine_output(
        "eval_quarantine", frames.quarantined, EVAL_QUARANTINE, frames.rule_counts, counts
    )
    imported = frames.predictions
    yield dg.Output(
        imported, "imported_predictions", metadata=table_metadata(imported, FILE_PREDICTIONS)
    )
    yield dg.AssetCheckResult(
        check_name=RECORDS_ACCOUNTED,
        asset_key="eval_items",
        passed=result.records_read == counts["accepted"] + counts["quarantined"],
        metadata=counts,
    )


class HeldoutItemsConfig(dg.Config):
    heldout_percent: int = Field(default=10, description="As sft_records' split.")


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"polars", "duckdb"},
    ins={"dialogues": dg.AssetIn("deidentified_dialogues")},
    tags=PHI_DEIDENTIFIED_TAGS,
    metadata={"dagster/column_schema": column_schema(EVAL_ITEMS)},
    automation_condition=dg.AutomationCondition.eager(),
)
def heldout_eval_items(
    config: HeldoutItemsConfig, dialogues: pl.DataFrame, warehouse: Warehouse
) -> dg.Output[pl.DataFrame]:
    """Every prefix of our held-out dialogues (the side of SFT's split no adapter trained on),
    as ``heldout_ask`` / ``heldout_tell`` items labelled by the real doctor reply."""
    from ark_assets.lib.evaluation.heldout import heldout_items

    rows = warehouse.forgotten().exclude(dialogues).iter_rows(named=True)
    items = items_frame(heldout_items(rows, config.heldout_percent), "deidentified_dialogues")
    by_set = dict(items.group_by("test_set").len().iter_rows())
    return dg.Output(
        items,
        metadata={**table_metadata(items, EVAL_ITEMS), "by_set": dg.MetadataValue.json(by_set)},
    )


class EvalPredictionsConfig(dg.Config):
    items_per_set: int = Field(
        default=6,
        description="Items of each test set a model system answers (0: all). The demo's 6 keep "
        "a CPU run to minutes (SmolLM2, ~4 sets); a real run sets 0 on a GPU or policy server.",
    )
    systems: list[str] = Field(default=["base_model", *ADAPTERS], description="Our systems to run.")
    max_new_tokens: int = Field(default=192, description="Per generation.")
    grammar: bool = Field(default=False, description="Constrain every tool call.")
    seed: int = Field(default=20250626, description="Picks the items.")


@dg.asset(
    group_name=GROUP,
    code_version="3",
    kinds={"pytorch", "polars", "duckdb"},
    ins={"heldout": dg.AssetIn("heldout_eval_items")},
    # Read through the warehouse: no eval file may have arrived yet (then the tables are absent).
    deps=["eval_items", "imported_predictions", "base_model", "kb_index", *ADAPTERS],
    metadata={"dagster/column_schema": column_schema(PREDICTIONS)},
    automation_condition=ON_NEW_ADAPTER_OR_FILE,
    pool="gpu",
)
def eval_predictions(
    context: dg.AssetExecutionContext,
    config: EvalPredictionsConfig,
    heldout: pl.DataFrame,
    policy: PolicyResource,
    warehouse: Warehouse,
    base_model: BaseModel,
    teacher: TeacherResource,
    embedder: EmbedderResource,
    vector_store: VectorStoreResource,
) -> dg.Output[pl.DataFrame]:
    """One row per (system, item): the base model and each adapter through the agent loop
    (batched) on a seeded sample of every test set, and every imported file's replies."""
    file_items, imported = _imported(warehouse, EVAL_ITEMS), _imported(warehouse, PREDICTIONS)
    columns = [c.name for c in EVAL_ITEMS]
    rows = pl.concat([file_items.select(columns), heldout.select(columns)])
    unique = rows.unique("item_id", keep="first", maintain_order=True)
    items = [item_of(r) for r in unique.iter_rows(named=True)]
    started = time.perf_counter()
    ours = _our_predictions(
        context, config, items, policy, base_model, teacher, embedder, vector_store
    )
    imported_rows = imported.select([c.name for c in PREDICTIONS])
    frame = pl.concat([predictions_frame(ours), imported_rows])
    seconds = time.perf_counter() - started
    by_system = dict(frame.group_by("system").len().iter_rows())
    return dg.Output(
        frame,
        metadata={
            **table_metadata(frame, PREDICTIONS),
            "by_system": dg.MetadataValue.json(by_system),
            "agent_seconds": round(seconds, 1),
        },
    )


def _imported(warehouse: Warehouse, columns: tuple[Column, ...]) -> pl.DataFrame:
    """Every imported file's rows of ``eval_items`` or ``imported_predictions`` (none yet: an
    empty frame), without the partition column."""
    table = "eval_items" if columns is EVAL_ITEMS else "imported_predictions"
    names = ", ".join(c.name for c in columns)
    found = warehouse.read(table, f"select {names} from {{table}}")
    return found if found is not None else frame([], columns)


def _our_predictions(
    context: dg.AssetExecutionContext,
    config: EvalPredictionsConfig,
    items: list[Any],
    policy: PolicyResource,
    base_model: BaseModel,
    teacher: TeacherResource,
    embedder: EmbedderResource,
    vector_store: VectorStoreResource,
) -> list[tuple[str, Prediction]]:
    from transformers import AutoTokenizer

    from ark_assets.lib.agent.loop import AgentLoop, LoopSettings
    from ark_assets.lib.agent.policy import Decoding
    from ark_assets.lib.evaluation.predict import agent_predictions, sample_items

    sampled = sample_items(items, config.items_per_set, config.seed)
    settings = LoopSettings(
        grammar=config.grammar, decoding=Decoding(max_new_tokens=config.max_new_tokens)
    )
    tokenizer = AutoTokenizer.from_pretrained(base_model.local_path())
    retriever = vector_store.index(embedder).retriever()
    out: list[tuple[str, Prediction]] = []
    with teacher.open() as refiner:
        for system in config.systems:
            adapter, name = _system(context, system)
            if system != "base_model" and adapter is None:
                context.log.warning(f"{system} was never materialized: not evaluated")
                continue
            student = policy.open(base_model.local_path(), adapter)
            on_step = loop_progress(context.log, f"eval {name}", len(sampled))
            loop = AgentLoop(student, tokenizer, retriever, refiner, settings, on_step)
            context.log.info(f"{name}: {len(sampled)} items through the agent loop")
            predictions = agent_predictions(loop, name, sampled)
            out += [(i.test_set, p) for i, p in zip(sampled, predictions, strict=True)]
    return out


def _system(context: dg.AssetExecutionContext, system: str) -> tuple[Path | None, str]:
    """The adapter directory of ``system`` and the name it is reported under."""
    if system == "base_model":
        return None, "base_model"
    adapter = latest_adapter(context.instance, system)
    return adapter, f"{system}@{adapter.name[:12]}" if adapter else system


class EvalReportConfig(dg.Config):
    medark_compat: bool = Field(
        default=False,
        description="Ask quality as MedArk's scripts compute it (quirks included: pair counts "
        "that exceed 1, character-level matching), to compare with numbers made by its code.",
    )
    seed: int = Field(default=0, description="Bootstrap resampling.")
    judge: bool = Field(
        default=False,
        description="Add the LLM judge's metrics (MedArk's questions, DISC-MedLLM's rubric) "
        "through the teacher resource, which must then be an LLM backend (not rules); the "
        "judge also decides the ask-or-tell of free-text replies.",
    )


@contextmanager
def _judge(config: EvalReportConfig, teacher: TeacherResource) -> Iterator[Judge | None]:
    if not config.judge:
        yield None
        return
    with teacher.open() as opened:
        yield Judge(opened)


def _mode(config: EvalReportConfig, judge: Judge | None, bertscore: BertScorer | None) -> str:
    parts = ["judge " + judge.teacher.identity.model if judge else "offline (no judge)"]
    parts += ["BERTScore"] if bertscore else []
    parts += ["medark_compat"] if config.medark_compat else []
    return ", ".join(parts)


@dg.asset(
    group_name=GROUP,
    code_version="3",
    kinds={"matplotlib", "markdown", "html"},
    deps=["eval_items"],
    ins={
        "predictions": dg.AssetIn("eval_predictions"),
        "heldout": dg.AssetIn("heldout_eval_items"),
        "dialogues": dg.AssetIn("deidentified_dialogues"),
        "kb_sources": dg.AssetIn(),
    },
    automation_condition=dg.AutomationCondition.eager()
    .ignore(
        dg.AssetSelection.assets(
            "deidentified_dialogues", "kb_sources", "heldout_eval_items", "eval_items"
        )
    )
    .with_label("after new predictions"),
)
def eval_report(
    context: dg.AssetExecutionContext,
    config: EvalReportConfig,
    predictions: pl.DataFrame,
    heldout: pl.DataFrame,
    dialogues: pl.DataFrame,
    kb_sources: pl.DataFrame,
    embedder: EmbedderResource,
    teacher: TeacherResource,
    bertscore: BertScoreResource,
    warehouse: Warehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """The leaderboard: one table per test set (systems × metrics, n and 95% bootstrap
    intervals), confusion matrices and metric bars as PNG plots, markdown + HTML under
    data/artifacts/reports/eval/; shown inline here. Offline metrics by default; the LLM judge's
    with `judge: true`, BERTScore with ARK_BERTSCORE_MODEL."""
    from ark_assets.lib.evaluation.report import metadata_markdown, render_report
    from ark_assets.lib.evaluation.scoring import evaluate

    items = pl.concat([_imported(warehouse, EVAL_ITEMS), heldout.select(heldout.columns)])
    scorer = bertscore.scorer()
    with _judge(config, teacher) as judge:
        scored, summary = evaluate(
            items, predictions, dialogues, kb_sources, embed=embedder.build().embed_documents,
            medark_compat=config.medark_compat, seed=config.seed, judge=judge, bertscore=scorer,
        )  # fmt: skip
        meta = _report_meta(context.run.run_id, _mode(config, judge, scorer), summary, judge)
    files = render_report(summary, scored.confusion, meta, artifacts.path("reports", "eval"))
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(metadata_markdown(files)),
            "path": dg.MetadataValue.path(str(files.html)),
            "markdown": dg.MetadataValue.path(str(files.markdown)),
            "systems": dg.MetadataValue.json(sorted(summary["system"].unique().to_list())),
            "test_sets": dg.MetadataValue.json(sorted(summary["test_set"].unique().to_list())),
            "scores": dg.MetadataValue.json(summary.to_dicts()),
            "entity_extraction": dg.MetadataValue.json(scored.entity_extraction),
        }
    )


def _report_meta(run_id: str, mode: str, summary: pl.DataFrame, judge: Judge | None) -> Any:
    from ark_assets.lib.evaluation.report import ReportMeta
    from ark_assets.lib.evaluation.scoring import METRICS

    meta: ReportMeta = {
        "run_id": run_id,
        "metric_definitions": METRICS,
        "mode": mode,
        "item_counts": dict(summary.group_by("test_set").agg(pl.col("n").max()).iter_rows()),
        "judge_failures": judge.failures if judge else {},
    }
    return meta
