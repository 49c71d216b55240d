"""Knowledge base: QA files → validated documents → Chroma index → retrieval report."""

from collections.abc import Callable, Iterator, Set
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from ark_assets.defs.knowledge.resources import EmbedderResource, KbInbox, VectorStoreResource
from ark_assets.defs.metadata import (
    build_metadata,
    column_schema,
    file_metadata,
    language_counts,
    table_metadata,
    table_out,
)
from ark_assets.defs.progress import counted_progress
from ark_assets.defs.quality import log_rejections, phi_free_result, quarantine_output
from ark_assets.defs.resources import ArtifactStore, Warehouse
from ark_assets.lib import tables
from ark_assets.lib.artifacts import atomic_write_bytes
from ark_assets.lib.compliance.deidentify import deidentify_documents
from ark_assets.lib.compliance.tombstones import TABLE as DELETION_REQUESTS
from ark_assets.lib.knowledge.evaluation import (
    EvalQuery,
    eval_queries,
    evaluate_index,
    markdown_report,
)
from ark_assets.lib.knowledge.inbox import current_files, land_all
from ark_assets.lib.knowledge.records import KbLimits, QaDocument, SourceFile
from ark_assets.lib.knowledge.store import content_digest, throwaway_index
from ark_assets.lib.knowledge.tables import (
    KB_QUARANTINED_RECORDS,
    KB_RETRIEVAL_EVAL,
    KB_SOURCES,
    documents_of,
    kb_frames,
)

GROUP = "knowledge"
RECORDS_ACCOUNTED = "records_accounted"
RECALL_AT_5_FLOOR = "recall_at_5_floor"
KB_PHI_FREE = "kb_sources_phi_free"
StepEvents = Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]


class KbSourcesConfig(dg.Config):
    max_question_chars: int = Field(
        default=KbLimits.max_question_chars, description="Longer questions are quarantined."
    )
    max_answer_chars: int = Field(
        default=KbLimits.max_answer_chars, description="Longer answers are quarantined."
    )


@dg.multi_asset(
    outs={
        "kb_sources": table_out(
            "The knowledge base: every QA pair in the KB inbox, normalised, one row per distinct "
            "doc_id.",
            KB_SOURCES,
            code_version="2",
            per_batch=False,
        ),
        "kb_quarantined_records": table_out(
            "Every QA record that broke a rule, with the rule and a fix.",
            KB_QUARANTINED_RECORDS,
            code_version="1",
            per_batch=False,
        ),
    },
    group_name=GROUP,
    check_specs=[
        dg.AssetCheckSpec(
            RECORDS_ACCOUNTED,
            asset="kb_sources",
            blocking=True,
            description="Records read (counted independently) = documents + duplicates "
            "collapsed + quarantined.",
        ),
        dg.AssetCheckSpec(
            KB_PHI_FREE,
            asset="kb_sources",
            blocking=True,
            description="No PHI detector fires on any question or answer (they are pasted into "
            "training prompts as retrieval results).",
        ),
    ],
    deps=[DELETION_REQUESTS],
)
def kb_sources(
    context: dg.AssetExecutionContext,
    config: KbSourcesConfig,
    kb_inbox: KbInbox,
    warehouse: Warehouse,
) -> StepEvents:
    """Reads every file in the KB inbox (landing each version), validates and normalises each
    QA pair, collapses exact duplicates by doc_id and replaces PHI in questions and answers.
    Files under a deletion request are not read."""
    arrived, files = _landed_kb_files(kb_inbox, warehouse.forgotten().file_sha256s)
    limits = KbLimits(config.max_question_chars, config.max_answer_chars)
    frames = kb_frames(files, limits, datetime.now(UTC))
    log_rejections(context.log, ((source.name, r) for source, r in frames.build.rejections))
    documents, phi_by_type = deidentify_documents(frames.documents)
    counts = frames.counts
    facts = _kb_facts(documents, files, arrived, phi_by_type)
    yield dg.Output(
        documents,
        output_name="kb_sources",
        metadata={**table_metadata(documents, KB_SOURCES), **counts, **facts},
    )
    yield quarantine_output(
        "kb_quarantined_records",
        frames.quarantined,
        KB_QUARANTINED_RECORDS,
        frames.build.rule_counts,
        counts,
    )
    yield dg.AssetCheckResult(
        check_name=RECORDS_ACCOUNTED,
        asset_key="kb_sources",
        passed=frames.accounted,
        metadata=counts,
    )
    texts = (text for pair in documents.select("question", "answer").iter_rows() for text in pair)
    yield phi_free_result(texts, check_name=KB_PHI_FREE, asset_key="kb_sources")


def _kb_facts(
    documents: pl.DataFrame, files: list[SourceFile], arrived: int, phi_by_type: dict[str, int]
) -> dict[str, Any]:
    """Which files the knowledge base was read from, and what de-identification replaced."""
    return {
        "files": dg.MetadataValue.json({f.name: f.sha256 for f in files}),
        "forgotten_files": arrived - len(files),
        "phi_replaced": sum(phi_by_type.values()),
        "phi_by_type": dg.MetadataValue.json(dict(sorted(phi_by_type.items()))),
        "languages": language_counts(documents),
    }


def _landed_kb_files(kb_inbox: KbInbox, forgotten_files: Set[str]) -> tuple[int, list[SourceFile]]:
    """How many files the KB inbox holds, and the landed ones not under a deletion request."""
    inbox = Path(kb_inbox.path)
    arrived = current_files(inbox)
    if not arrived and not forgotten_files:
        raise dg.Failure(
            f"no files in the KB inbox {inbox}: drop .jsonl/.csv/.json QA files there "
            "(e.g. ark_assets/samples/kb_qa_sample.jsonl); an empty inbox never empties the index"
        )
    kept = [f for f in arrived if f.sha256 not in forgotten_files]
    return len(arrived), land_all(kept, inbox, Path(kb_inbox.landing_path))


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"chroma"},
    automation_condition=dg.AutomationCondition.eager(),
    # An embedded Chroma store takes one writing process at a time (pool limit 1, dagster.yaml).
    pool="chroma",
)
def kb_index(
    context: dg.AssetExecutionContext,
    kb_sources: pl.DataFrame,
    embedder: EmbedderResource,
    vector_store: VectorStoreResource,
) -> dg.MaterializeResult:
    """The Chroma collection of the knowledge base for the configured embedder: document =
    question, metadata {question, answer, source, doc_id}, id = doc_id. Incremental: only new
    documents are embedded, removed ones are deleted."""
    index = vector_store.index(embedder)
    documents = documents_of(kb_sources)
    context.log.info(
        f"syncing {len(documents)} documents into {index.name} at {vector_store.location}"
    )
    stats = index.sync(documents, embedder.batch_size, on_batch=_progress(context))
    context.log.info(f"{index.name}: {stats}")
    digest = content_digest(index.embedder.identity, kb_sources["doc_id"])
    return dg.MaterializeResult(
        metadata={
            **build_metadata(),
            **vector_store.location_metadata(),
            "collection": index.name,
            "embedder": index.embedder.identity,
            "dimension": index.embedder.dim,
            "dagster/row_count": stats.count,
            "added": stats.added,
            "removed": stats.removed,
            "kept": stats.kept,
            "relabelled": stats.relabelled,
            "elapsed_s": round(stats.seconds, 3),
            "embed_s": round(stats.embed_seconds, 3),
            "docs_per_s": round(stats.docs_per_s, 1),
            "content_digest": digest,
        },
        data_version=dg.DataVersion(digest),
    )


def _progress(context: dg.AssetExecutionContext) -> Callable[[int, int], None]:
    """Embedding progress about every 10% (never one line per batch on a big rebuild)."""
    return counted_progress(context.log, "embedded", unit="new documents")


class KbRetrievalEvalConfig(dg.Config):
    held_out_documents: int = Field(
        default=200,
        description="Documents whose derived queries are scored (3 each): ±4 points of recall "
        "at 95%, enough to rank embedders, a minute of CPU for a real model.",
    )
    seed: int = Field(default=20250626, description="Picks the held-out documents and edits.")
    compare_embedders: list[str] = Field(
        default=[],
        description="Other backends to score, each on a throwaway in-memory index of the same "
        "documents (e.g. ['hashing', 'multilingual_e5']).",
    )
    hybrid: bool = Field(default=True, description="Also score BM25 + vector rank fusion.")
    recall_at_5_floor: float = Field(
        default=0.6, description="Warn when the index's dense recall@5 falls below this."
    )


@dg.asset(
    group_name=GROUP,
    code_version="1",
    deps=["kb_index"],
    kinds={"polars", "duckdb"},
    metadata={"dagster/column_schema": column_schema(KB_RETRIEVAL_EVAL)},
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec(
            RECALL_AT_5_FLOOR,
            asset="kb_retrieval_eval",
            description="The index's dense recall@5 is above the configured floor (warns).",
        )
    ],
)
def kb_retrieval_eval(
    context: dg.AssetExecutionContext,
    config: KbRetrievalEvalConfig,
    kb_sources: pl.DataFrame,
    embedder: EmbedderResource,
    vector_store: VectorStoreResource,
    artifacts: ArtifactStore,
) -> StepEvents:
    """recall@1/@5 and MRR of the index (and of any compared embedder) on queries derived from
    held-out documents, one row per embedder and mode; the markdown report beside it."""
    documents = documents_of(kb_sources)
    queries = eval_queries(documents, config.held_out_documents, config.seed)
    rows = evaluate_index(vector_store.index(embedder), queries, config.hybrid)
    for backend in (b for b in config.compare_embedders if b != embedder.backend):
        rows += _score_on_throwaway_index(context, embedder, backend, documents, queries, config)
    frame = tables.frame(rows, KB_RETRIEVAL_EVAL)
    held_out = len(queries) // 3
    report = markdown_report(rows, held_out, len(documents), config.seed)
    path = artifacts.path("reports", "kb_retrieval_eval.md")
    atomic_write_bytes(path, report.encode())
    recall = rows[0]["recall_at_5"]
    yield dg.Output(
        frame,
        metadata={
            **table_metadata(frame, KB_RETRIEVAL_EVAL),
            **file_metadata(path),
            "results": dg.MetadataValue.table(
                [dg.TableRecord(row) for row in rows], column_schema(KB_RETRIEVAL_EVAL)
            ),
            "report": dg.MetadataValue.md(report),
            "recall_at_5": recall,
        },
    )
    yield dg.AssetCheckResult(
        check_name=RECALL_AT_5_FLOOR,
        passed=recall >= config.recall_at_5_floor,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"recall_at_5": recall, "floor": config.recall_at_5_floor},
    )


def _score_on_throwaway_index(
    context: dg.AssetExecutionContext,
    embedder: EmbedderResource,
    backend: str,
    documents: list[QaDocument],
    queries: list[EvalQuery],
    config: KbRetrievalEvalConfig,
) -> list[dict[str, Any]]:
    """The rows of another embedder, scored on an in-memory index of the same documents."""
    context.log.info(f"scoring {backend} on a throwaway index of {len(documents)} documents")
    with throwaway_index(embedder.build(backend), documents, on_batch=_progress(context)) as index:
        return evaluate_index(index, queries, config.hybrid)
