"""Column contracts of the knowledge-base tables, and the frames built against them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from ark_assets.lib import tables
from ark_assets.lib.ingest.tables import QUARANTINED_RECORDS
from ark_assets.lib.knowledge.records import (
    KbBuild,
    KbLimits,
    QaDocument,
    SourceFile,
    build_kb,
    count_qa_records,
)
from ark_assets.lib.tables import Column

KB_SOURCES = (
    Column("doc_id", pl.Utf8, "sha256 of the normalised question + newline + answer."),
    Column("question", pl.Utf8, "Normalised question: the text that is embedded and searched."),
    Column("answer", pl.Utf8, "Normalised answer: returned with the question on retrieval."),
    Column("source", pl.Utf8, "Where the pair comes from, when the record says."),
    Column("language", pl.Utf8, "zh or en, detected from the text; null when it has no letters."),
    Column("source_file", pl.Utf8, "KB file of the first occurrence."),
    Column("file_sha256", pl.Utf8, "sha256 of that file's bytes (its landed copy is kept)."),
    Column("record_index", pl.Int64, "0-based position of the first occurrence in its file."),
    Column("source_format", pl.Utf8, "jsonl, csv or json."),
    Column("occurrences", pl.Int64, "Records collapsed into this document (1 = unique)."),
    Column("loaded_at", pl.Datetime("us", "UTC"), "When this knowledge base was materialized."),
)

# The ingest quarantine contract without the batch column (the KB is not partitioned).
KB_QUARANTINED_RECORDS = tuple(c for c in QUARANTINED_RECORDS if c.name != "batch")

KB_RETRIEVAL_EVAL = (
    Column("embedder", pl.Utf8, "Embedder identity (also encoded in the collection name)."),
    Column("mode", pl.Utf8, "dense (vectors only) or hybrid (BM25 + vectors, rank fusion)."),
    Column("queries", pl.Int64, "Queries evaluated (held-out documents × query kinds)."),
    Column("recall_at_1", pl.Float64, "Share of queries whose document ranks first."),
    Column("recall_at_5", pl.Float64, "Share of queries whose document is in the top 5."),
    Column("mrr", pl.Float64, "Mean reciprocal rank of the document (0 past rank 10)."),
    Column("recall_at_5_question", pl.Float64, "recall@5 when the query is the question itself."),
    Column("recall_at_5_perturbed", pl.Float64, "recall@5 for a perturbed question."),
    Column("recall_at_5_answer", pl.Float64, "recall@5 for a sentence of the answer."),
    Column("queries_per_s", pl.Float64, "Search throughput over the evaluation, k=10."),
)


@dataclass(frozen=True)
class KbFrames:
    """The ``kb_sources`` and ``kb_quarantined_records`` rows of one knowledge-base build."""

    documents: pl.DataFrame
    quarantined: pl.DataFrame
    build: KbBuild
    records_read: int  # counted independently of the parser (records.count_qa_records)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "records_read": self.records_read,
            "documents": self.documents.height,
            "duplicates_collapsed": self.build.duplicates,
            "quarantined": self.quarantined.height,
        }

    @property
    def accounted(self) -> bool:
        """records read = documents + duplicates collapsed + quarantined."""
        c = self.counts
        return c["records_read"] == c["documents"] + c["duplicates_collapsed"] + c["quarantined"]


def kb_frames(files: Sequence[SourceFile], limits: KbLimits, now: datetime) -> KbFrames:
    build = build_kb(files, limits)
    return KbFrames(
        documents=document_rows(build, now),
        quarantined=quarantine_rows(build, now),
        build=build,
        records_read=sum(count_qa_records(f.name, f.data) for f in files),
    )


def document_rows(build: KbBuild, now: datetime) -> pl.DataFrame:
    return tables.frame(
        (
            {
                **_document_fields(doc),
                "occurrences": build.occurrences[doc.doc_id],
                "loaded_at": now,
            }
            for doc in build.documents
        ),
        KB_SOURCES,
    )


def quarantine_rows(build: KbBuild, now: datetime) -> pl.DataFrame:
    return tables.frame(
        (
            {
                "source_file": source.name,
                "file_sha256": source.sha256,
                "record_index": rejection.record_index,
                "rule": rejection.rule,
                "message": rejection.message,
                "excerpt": rejection.excerpt,
                "quarantined_at": now,
            }
            for source, rejection in build.rejections
        ),
        KB_QUARANTINED_RECORDS,
    )


def documents_of(frame: pl.DataFrame) -> list[QaDocument]:
    """The documents of a ``kb_sources`` frame, in its row order."""
    fields = QaDocument.__dataclass_fields__
    return [
        QaDocument(**{k: v for k, v in row.items() if k in fields})
        for row in frame.iter_rows(named=True)
    ]


def _document_fields(doc: QaDocument) -> dict[str, Any]:
    return {name: getattr(doc, name) for name in QaDocument.__dataclass_fields__}
