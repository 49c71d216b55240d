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
    language_counts,
    table_metadata,
    table_out,
)
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.quality import log_rejections, quarantine_output
from ark_assets.defs.resources import ArtifactStore, DialogueInbox, IngestRules, Warehouse
from ark_assets.lib.artifacts import atomic_write_bytes
from ark_assets.lib.compliance.tombstones import TABLE as DELETION_REQUESTS
from ark_assets.lib.ingest import tables
from ark_assets.lib.ingest.batches import BatchFrames, ingest_batch, store_batch
from ark_assets.lib.ingest.formats import count_records
from ark_assets.lib.ingest.inbox import land
from ark_assets.lib.ingest.tagging import COLLISION, DUPLICATE, medark_tagged_dict, tag_frames
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
            code_version="3",
            tags=PHI_RAW_TAGS,
        ),
        "quarantined_records": table_out(
            "Every record of the file that broke a rule, with the rule and a fix.",
            tables.QUARANTINED_RECORDS,
            code_version="3",
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
    """Reads the batch's file (landing it on first read), validates every record and splits
    them into accepted dialogues and quarantined records; drops forgotten dialogues, and the
    whole file when it is itself forgotten. Both tables are written in one transaction."""
    batch = context.partition_key
    forgotten = warehouse.forgotten()
    if batch in forgotten.batches:
        yield from _forgotten_batch(context, batch, warehouse)
        return
    name, data, digest = land(batch, Path(inbox.path), Path(inbox.landing_path))
    frames = ingest_batch(batch, name, data, digest, ingest_rules.limits(), datetime.now(UTC))
    log_rejections(context.log, ((name, r) for r in frames.result.rejections))
    read = count_records(name, data)
    accepted = forgotten.exclude(frames.accepted)
    counts = _accounting(read, frames, accepted)
    _store(warehouse, batch, raw_dialogues=accepted, quarantined_records=frames.quarantined)
    yield dg.MaterializeResult(
        asset_key="raw_dialogues",
        metadata={**_accepted_metadata(accepted, frames, name, digest), **counts},
    )
    quarantine = quarantine_output(
        "quarantined_records",
        frames.quarantined,
        tables.QUARANTINED_RECORDS,
        frames.rule_counts,
        counts,
    )
    yield dg.MaterializeResult(asset_key="quarantined_records", metadata=quarantine.metadata)
    yield dg.AssetCheckResult(
        check_name=RECORDS_ACCOUNTED,
        asset_key="raw_dialogues",
        passed=read == counts["accepted"] + counts["quarantined"] + counts["forgotten"],
        metadata=counts,
    )


def _accounting(read: int, frames: BatchFrames, accepted: pl.DataFrame) -> dict[str, int]:
    """Records read (counted independently of the parser) and where each one went."""
    return {
        "records_read": read,
        "accepted": accepted.height,
        "quarantined": frames.quarantined.height,
        "forgotten": frames.accepted.height - accepted.height,
    }


def _accepted_metadata(
    accepted: pl.DataFrame, frames: BatchFrames, name: str, digest: str
) -> dict[str, Any]:
    return {
        **table_metadata(accepted, tables.RAW_DIALOGUES),
        "source_file": name,
        "file_sha256": digest,
        "source_format": frames.result.source_format,
        "languages": language_counts(accepted),
    }


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
            code_version="3",
            tags=PHI_RAW_TAGS,
        ),
        "tag_collisions": table_out(
            "Every record that did not get its own plain MedArk key, and why.",
            tables.TAG_COLLISIONS,
            code_version="3",
        ),
    },
    ins={"raw_dialogues": dg.AssetIn()},
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
    context: dg.AssetExecutionContext, raw_dialogues: pl.DataFrame, warehouse: Warehouse
) -> StepEvents:
    """Computes the MedArk key of every accepted dialogue, against the keys already held by
    other batches, and records each collision and collapsed duplicate; both tables are written
    in one transaction."""
    batch = context.partition_key
    forgotten = warehouse.forgotten()
    dialogues = forgotten.exclude(raw_dialogues)
    others = warehouse.read(
        "tagged_dialogues",
        "select conversation_id, medark_key, dialogue_sha256, batch from {table} where batch <> ?",
        [batch],
    )
    if others is None:
        others = frame([], tables.TAGGED_DIALOGUES)
    tagged, collisions = tag_frames(batch, dialogues, others)
    kinds = collisions["kind"]
    n_collisions, n_duplicates = (kinds == COLLISION).sum(), (kinds == DUPLICATE).sum()
    counts = {
        "collisions": int(n_collisions),
        "duplicates_collapsed": int(n_duplicates),
        "forgotten": raw_dialogues.height - dialogues.height,
    }
    _store(warehouse, batch, tagged_dialogues=tagged, tag_collisions=collisions)
    yield dg.MaterializeResult(
        asset_key="tagged_dialogues",
        metadata={**table_metadata(tagged, tables.TAGGED_DIALOGUES), **counts},
    )
    yield dg.MaterializeResult(
        asset_key="tag_collisions",
        metadata={**table_metadata(collisions, tables.TAG_COLLISIONS), **counts},
    )
    yield _ids_unique(tagged, others)
    yield dg.AssetCheckResult(
        check_name=DIALOGUES_ACCOUNTED,
        asset_key="tagged_dialogues",
        passed=raw_dialogues.height == tagged.height + n_duplicates + counts["forgotten"],
        metadata={"accepted": raw_dialogues.height, "tagged": tagged.height, **counts},
    )


def _ids_unique(tagged: pl.DataFrame, others: pl.DataFrame) -> dg.AssetCheckResult:
    """No conversation id twice in the batch, nor held by another batch."""
    reused = tagged.join(others, on="conversation_id", how="semi").height
    duplicated = tagged.height - tagged["conversation_id"].n_unique()
    return dg.AssetCheckResult(
        check_name=CONVERSATION_ID_UNIQUE,
        asset_key="tagged_dialogues",
        passed=reused == 0 and duplicated == 0,
        metadata={"repeated_in_batch": duplicated, "held_by_other_batches": reused},
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
