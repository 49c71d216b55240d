"""Ingest: arrived dialogue files → validated dialogues, quarantine, MedArk-keyed dialogues."""

import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from ark_assets.defs.metadata import (
    PHI_RAW_TAGS,
    file_metadata,
    table_metadata,
    table_out,
)
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.quality import LOGGED_REJECTIONS, log_rejections
from ark_assets.defs.resources import ArtifactStore, DialogueInbox, IngestRules, Warehouse
from ark_assets.lib.artifacts import atomic_write_bytes
from ark_assets.lib.compliance.tombstones import TABLE as DELETION_REQUESTS
from ark_assets.lib.ingest import tables
from ark_assets.lib.ingest.batches import (
    TagSummary,
    bound_memory,
    store_batch,
    store_file,
    tag_stored_batch,
)
from ark_assets.lib.ingest.dialogues import Rejection
from ark_assets.lib.ingest.inbox import land_file
from ark_assets.lib.ingest.stream import Summary, Where, read_chunks
from ark_assets.lib.ingest.tagging import medark_tagged_dict
from ark_assets.lib.tables import frame

GROUP = "ingest"
RECORDS_ACCOUNTED = "records_accounted"
DIALOGUES_ACCOUNTED = "dialogues_accounted"
CONVERSATION_ID_UNIQUE = "conversation_id_unique"
StepEvents = Iterator[dg.MaterializeResult | dg.AssetCheckResult]


@dg.multi_asset(
    outs={
        "raw_dialogues": table_out(
            "Accepted dialogues of one arrived file, one row per dialogue.",
            tables.RAW_DIALOGUES,
            code_version="4",
            tags=PHI_RAW_TAGS,
        ),
        "quarantined_records": table_out(
            "Every record of the file that broke a rule, with the rule and a fix.",
            tables.QUARANTINED_RECORDS,
            code_version="4",
            tags=PHI_RAW_TAGS,
        ),
    },
    deps=[DELETION_REQUESTS],
    partitions_def=dialogue_batches,
    group_name=GROUP,
    check_specs=[
        dg.AssetCheckSpec(
            RECORDS_ACCOUNTED,
            asset="raw_dialogues",
            blocking=True,
            description="Records read (counted independently) = accepted + quarantined + "
            "forgotten (deletion requests).",
        )
    ],
)
def raw_dialogues(
    context: dg.AssetExecutionContext,
    inbox: DialogueInbox,
    ingest_rules: IngestRules,
    warehouse: Warehouse,
) -> StepEvents:
    """Reads the batch's file (landing it on first read) in chunks, validates every record and
    splits them into accepted dialogues and quarantined records; drops forgotten dialogues, and
    the whole file when it is itself forgotten. Both tables are written in one transaction."""
    batch = context.partition_key
    forgotten = warehouse.forgotten()
    if batch in forgotten.batches:
        yield from _forgotten_batch(context, batch, warehouse)
        return
    name, path, digest = land_file(batch, Path(inbox.path), Path(inbox.landing_path))
    where = Where(batch, name, digest, datetime.now(UTC))
    logged = _RejectionLog(context.log, name)
    with warehouse.connect() as conn:
        bound_memory(conn, ingest_rules.duckdb_memory_limit)
        chunks = read_chunks(path, where, ingest_rules.limits())
        summary = store_file(conn, warehouse.schema_name, where, chunks, forgotten.exclude, logged)
    yield from _ingest_events(summary, name, digest)


def _ingest_events(summary: Summary, name: str, digest: str) -> StepEvents:
    """The two tables' materializations and the accounting check of one ingested file."""
    counts = {
        "records_read": summary.records_read,
        "accepted": summary.accepted,
        "quarantined": summary.quarantined,
        "forgotten": summary.forgotten,
    }
    yield dg.MaterializeResult(
        asset_key="raw_dialogues",
        metadata={
            **table_metadata(summary.accepted, tables.RAW_DIALOGUES),
            "source_file": name,
            "file_sha256": digest,
            "source_format": summary.source_format,
            "languages": dg.MetadataValue.json(dict(sorted(summary.languages.items()))),
            **counts,
        },
    )
    yield dg.MaterializeResult(
        asset_key="quarantined_records",
        metadata={
            **table_metadata(summary.quarantined, tables.QUARANTINED_RECORDS),
            **counts,
            "rules": dg.MetadataValue.json(dict(sorted(summary.rule_counts.items()))),
        },
    )
    yield dg.AssetCheckResult(
        check_name=RECORDS_ACCOUNTED,
        asset_key="raw_dialogues",
        passed=summary.records_read == summary.accepted + summary.quarantined + summary.forgotten,
        metadata=counts,
    )


class _RejectionLog:
    """Logs the first ``LOGGED_REJECTIONS`` rejections of a file, chunk after chunk."""

    def __init__(self, log: Any, name: str) -> None:
        self.log, self.name, self.left = log, name, LOGGED_REJECTIONS

    def __call__(self, rejections: list[Rejection]) -> None:
        log_rejections(self.log, ((self.name, r) for r in rejections), self.left)
        self.left = max(0, self.left - len(rejections))


def _store(warehouse: Warehouse, batch: str, **rows: pl.DataFrame) -> None:
    """The batch's rows of every table of the step, committed together or not at all."""
    with warehouse.connect() as conn:
        store_batch(conn, warehouse.schema_name, batch, rows)


def _forgotten_batch(
    context: dg.AssetExecutionContext, batch: str, warehouse: Warehouse
) -> StepEvents:
    """A source file under a deletion request: its tables become empty, nothing is read."""
    context.log.warning(f"batch {batch} is under a deletion request: storing no rows")
    counts = {"records_read": 0, "accepted": 0, "quarantined": 0, "forgotten_file": True}
    empty = {
        "raw_dialogues": frame([], tables.RAW_DIALOGUES),
        "quarantined_records": frame([], tables.QUARANTINED_RECORDS),
    }
    _store(warehouse, batch, **empty)
    for output, columns in (
        ("raw_dialogues", tables.RAW_DIALOGUES),
        ("quarantined_records", tables.QUARANTINED_RECORDS),
    ):
        yield dg.MaterializeResult(
            asset_key=output, metadata={**table_metadata(empty[output], columns), **counts}
        )
    yield dg.AssetCheckResult(
        check_name=RECORDS_ACCOUNTED, asset_key="raw_dialogues", passed=True, metadata=counts
    )


@dg.multi_asset(
    outs={
        "tagged_dialogues": table_out(
            "Dialogues keyed by MedArk's sha256(str(first turn)); exact duplicates collapsed, "
            "colliding dialogues kept under <key>~<digest prefix>.",
            tables.TAGGED_DIALOGUES,
            code_version="5",
            tags=PHI_RAW_TAGS,
        ),
        "tag_collisions": table_out(
            "Every record that did not get its own plain MedArk key, and why.",
            tables.TAG_COLLISIONS,
            code_version="4",
        ),
    },
    deps=["raw_dialogues"],
    partitions_def=dialogue_batches,
    group_name=GROUP,
    # Reads the other batches' keys and writes its own: two batches tagged at once could both
    # claim one key, so these steps run one at a time (pool limit 1 in dagster.yaml).
    pool="duckdb",
    check_specs=[
        dg.AssetCheckSpec(
            CONVERSATION_ID_UNIQUE,
            asset="tagged_dialogues",
            blocking=True,
            description="conversation_id is unique in the batch and across all batches.",
        ),
        dg.AssetCheckSpec(
            DIALOGUES_ACCOUNTED,
            asset="tagged_dialogues",
            blocking=True,
            description="Accepted dialogues = tagged rows + collapsed duplicates + forgotten.",
        ),
    ],
)
def tagged_dialogues(
    context: dg.AssetExecutionContext, warehouse: Warehouse, ingest_rules: IngestRules
) -> StepEvents:
    """Computes the MedArk key of every accepted dialogue, against the keys already held by
    other batches, and records each collision and collapsed duplicate; both tables are written
    in one transaction, inside the warehouse (the dialogues' text never enters Python).
    ``tagged_dialogues`` is a view: the batch's ``raw_dialogues`` rows joined with the ids this
    step stores in ``dialogue_tags``, so the text is stored once."""
    batch = context.partition_key
    forgotten = warehouse.forgotten()
    with warehouse.connect() as conn:
        bound_memory(conn, ingest_rules.duckdb_memory_limit)
        tag = tag_stored_batch(conn, warehouse.schema_name, batch, forgotten.exclude)
    yield from _tag_events(tag)


def _tag_events(tag: TagSummary) -> StepEvents:
    """The two tables' materializations and the checks of one tagged batch."""
    counts = {
        "collisions": tag.collisions,
        "duplicates_collapsed": tag.duplicates_collapsed,
        "forgotten": tag.forgotten,
    }
    yield dg.MaterializeResult(
        asset_key="tagged_dialogues",
        metadata={**table_metadata(tag.tagged, tables.TAGGED_DIALOGUES), **counts},
    )
    yield dg.MaterializeResult(
        asset_key="tag_collisions",
        metadata={
            **table_metadata(tag.collisions + tag.duplicates_collapsed, tables.TAG_COLLISIONS),
            **counts,
        },
    )
    yield dg.AssetCheckResult(
        check_name=CONVERSATION_ID_UNIQUE,
        asset_key="tagged_dialogues",
        passed=tag.repeated_in_batch == 0 and tag.held_by_other_batches == 0,
        metadata={
            "repeated_in_batch": tag.repeated_in_batch,
            "held_by_other_batches": tag.held_by_other_batches,
        },
    )
    yield dg.AssetCheckResult(
        check_name=DIALOGUES_ACCOUNTED,
        asset_key="tagged_dialogues",
        passed=tag.accepted == tag.tagged + tag.duplicates_collapsed + tag.forgotten,
        metadata={"accepted": tag.accepted, "tagged": tag.tagged, **counts},
    )


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"python", "file"},
    tags=PHI_RAW_TAGS,
    automation_condition=dg.AutomationCondition.eager(),
)
def tagged_pkl(
    context: dg.AssetExecutionContext,
    tagged_dialogues: pl.DataFrame,
    artifacts: ArtifactStore,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """MedArk's tagged.pkl: a pickled ``dict[conversation key -> list of turn dicts]`` over all
    batches, loadable by MedArk's own stages (plain keys are byte-identical to theirs)."""
    entries = medark_tagged_dict(warehouse.forgotten().exclude(tagged_dialogues))
    path = artifacts.path("exports", "tagged.pkl")
    atomic_write_bytes(path, pickle.dumps(entries, protocol=4))
    disambiguated = sum("~" in key for key in entries)
    context.log.info(f"wrote {len(entries)} dialogues to {path}")
    return dg.MaterializeResult(
        metadata={
            **file_metadata(path),
            "entries": len(entries),
            "disambiguated_entries": disambiguated,
            "batches": tagged_dialogues["batch"].n_unique(),
        }
    )
