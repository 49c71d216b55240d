"""Contracts of the knowledge-base tables and of the index built from them."""

import dagster as dg
import great_expectations.expectations as gxe
import polars as pl

from ark_assets.defs.knowledge.resources import EmbedderResource, VectorStoreResource
from ark_assets.defs.quality import gx_check, quarantine_rules_result
from ark_assets.lib.language import SUPPORTED_LANGUAGES

KB_SOURCES_CONTRACT = "kb_sources_contract"
KB_QUARANTINE_RULES_KNOWN = "kb_quarantine_rules_known"
KB_INDEX_MATCHES_SOURCES = "kb_index_matches_sources"
KB_INDEX_CONTRACT = "kb_index_contract"

_HEX64 = r"^[0-9a-f]{64}$"
_NOT_BLANK = r"\S"


@dg.asset_check(
    asset="kb_sources",
    name=KB_SOURCES_CONTRACT,
    blocking=True,
    description="doc_id unique sha256 hex; question and answer present and not blank; "
    "language zh/en where detected.",
)
def kb_sources_contract(kb_sources: pl.DataFrame) -> dg.AssetCheckResult:
    return gx_check(
        kb_sources,
        KB_SOURCES_CONTRACT,
        [
            gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
            gxe.ExpectColumnValuesToMatchRegex(column="doc_id", regex=_HEX64),
            *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("question", "answer")),
            *(
                gxe.ExpectColumnValuesToMatchRegex(column=c, regex=_NOT_BLANK)
                for c in ("question", "answer")
            ),
            gxe.ExpectColumnValuesToBeInSet(column="language", value_set=list(SUPPORTED_LANGUAGES)),
            gxe.ExpectColumnValuesToBeBetween(column="occurrences", min_value=1),
        ],
    )


@dg.asset_check(
    asset="kb_quarantined_records",
    name=KB_QUARANTINE_RULES_KNOWN,
    description="Every quarantined QA record names a known rule and carries a message.",
)
def kb_quarantine_rules_known(kb_quarantined_records: pl.DataFrame) -> dg.AssetCheckResult:
    return quarantine_rules_result(kb_quarantined_records)


@dg.asset_check(
    asset="kb_index",
    name=KB_INDEX_MATCHES_SOURCES,
    blocking=True,
    additional_ins={"kb_sources": dg.AssetIn("kb_sources")},
    description="The collection holds exactly the distinct documents of kb_sources.",
)
def kb_index_matches_sources(
    kb_sources: pl.DataFrame, embedder: EmbedderResource, vector_store: VectorStoreResource
) -> dg.AssetCheckResult:
    index = vector_store.index(embedder)
    stored = set(index.stored_metadata())
    wanted = set(kb_sources["doc_id"].to_list())
    return dg.AssetCheckResult(
        passed=stored == wanted and index.count() == len(wanted),
        metadata={
            "collection": index.name,
            "indexed": index.count(),
            "distinct_documents": len(wanted),
            "missing": len(wanted - stored),
            "unexpected": len(stored - wanted),
        },
    )


@dg.asset_check(
    asset="kb_index",
    name=KB_INDEX_CONTRACT,
    blocking=True,
    description="Every stored vector has the embedder's dimension; no stored document has an "
    "empty question or answer.",
)
def kb_index_contract(
    embedder: EmbedderResource, vector_store: VectorStoreResource
) -> dg.AssetCheckResult:
    index = vector_store.index(embedder)
    dimensions = index.dimensions()
    empty = sum(
        1
        for meta in index.stored_metadata().values()
        if not str(meta.get("question", "")).strip() or not str(meta.get("answer", "")).strip()
    )
    expected = index.embedder.dim
    declared = (index.collection.metadata or {}).get("dim")
    return dg.AssetCheckResult(
        passed=set(dimensions) <= {expected} and declared == expected and empty == 0,
        metadata={
            "expected_dimension": expected,
            "collection_dimension": str(declared),
            "dimensions": dg.MetadataValue.json({str(k): v for k, v in dimensions.items()}),
            "empty_question_or_answer": empty,
        },
    )
