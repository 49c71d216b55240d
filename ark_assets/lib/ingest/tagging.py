"""MedArk conversation keys, exact-duplicate collapsing and collision handling.

MedArk keys every dialogue by ``sha256(str(first_turn))`` and keeps the *last* dialogue when two
share a first turn. We keep both: the first dialogue to claim a key holds it as its
``conversation_id``; a later, different dialogue with the same key (a *collision*) gets
``<key>~<first 12 hex of its dialogue digest>``. Exact duplicates (same whole dialogue) collapse
into the row that already holds the dialogue. Every collision and collapse is reported as a
``TagEvent`` so nothing disappears silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from ark_assets.lib.ingest import tables
from ark_assets.lib.tables import frame

COLLISION = "collision"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Holder:
    """A dialogue already tagged in another batch."""

    conversation_id: str
    medark_key: str
    dialogue_sha256: str
    batch: str


@dataclass
class TaggedRow:
    conversation_id: str
    medark_key: str
    dialogue_sha256: str
    record_index: int
    occurrences: int  # records in this batch with exactly this dialogue (1 = no duplicate)


@dataclass(frozen=True)
class TagEvent:
    kind: str  # COLLISION or DUPLICATE
    medark_key: str
    dialogue_sha256: str
    record_index: int
    conversation_id: str  # the id this record's dialogue ended up under
    other_conversation_id: str  # the dialogue it collided with / duplicated
    other_batch: str


def collision_id(key: str, digest: str) -> str:
    return f"{key}~{digest[:12]}"


def tag_batch(
    batch: str,
    records: Sequence[tuple[int, str, str]],
    others: Iterable[Holder] = (),
) -> tuple[list[TaggedRow], list[TagEvent]]:
    """Tag one batch of accepted dialogues.

    ``records`` are ``(record_index, medark_key, dialogue_sha256)`` in file order. ``others``
    are the dialogues already tagged in *other* batches, so re-tagging a batch never competes
    with its own earlier output and the outcome does not flip between runs.
    """
    by_key: dict[str, list[Holder]] = {}
    by_digest: dict[str, Holder] = {}
    for holder in others:
        by_key.setdefault(holder.medark_key, []).append(holder)
        by_digest.setdefault(holder.dialogue_sha256, holder)

    rows: list[TaggedRow] = []
    row_of_digest: dict[str, TaggedRow] = {}
    events: list[TagEvent] = []
    for record_index, key, digest in records:
        if digest in by_digest:
            kept = by_digest[digest]
            events.append(
                TagEvent(
                    DUPLICATE,
                    key,
                    digest,
                    record_index,
                    kept.conversation_id,
                    kept.conversation_id,
                    kept.batch,
                )
            )
            if digest in row_of_digest:
                row_of_digest[digest].occurrences += 1
            continue
        holders = by_key.setdefault(key, [])
        key_taken = any(h.conversation_id == key for h in holders)
        conversation_id = collision_id(key, digest) if key_taken else key
        if holders:
            first = holders[0]
            events.append(
                TagEvent(
                    COLLISION,
                    key,
                    digest,
                    record_index,
                    conversation_id,
                    first.conversation_id,
                    first.batch,
                )
            )
        holder = Holder(conversation_id, key, digest, batch)
        holders.append(holder)
        by_digest[digest] = holder
        row = TaggedRow(conversation_id, key, digest, record_index, occurrences=1)
        row_of_digest[digest] = row
        rows.append(row)
    return rows, events


def tag_keys(
    batch: str, keys: pl.DataFrame, others: pl.DataFrame
) -> tuple[pl.DataFrame, list[TagEvent]]:
    """``tag_batch`` over frames: ``keys`` has ``record_index, medark_key, dialogue_sha256`` of a
    batch's dialogues, ``others`` the ``conversation_id, medark_key, dialogue_sha256, batch`` of
    other batches' (only those sharing a key or a digest with ``keys`` matter). Returns
    ``record_index, conversation_id, occurrences`` of the rows that stay, and the events.

    A dialogue whose key and digest nothing else in the batch or in ``others`` shares keeps its
    MedArk key as its id with no event: that is what ``tag_batch`` gives it, and it changes
    nothing for any other record, so only the rest goes through ``tag_batch``, in file order.
    """
    keys = keys.sort("record_index")
    other_keys = others["medark_key"].implode()
    other_digests = others["dialogue_sha256"].implode()
    shared = (
        pl.col("medark_key").is_duplicated()
        | pl.col("dialogue_sha256").is_duplicated()
        | pl.col("medark_key").is_in(other_keys)
        | pl.col("dialogue_sha256").is_in(other_digests)
    )
    marked = keys.with_columns(shared.alias("shared"))
    plain = marked.filter(~pl.col("shared")).select(
        "record_index",
        pl.col("medark_key").alias("conversation_id"),
        pl.lit(1, pl.Int64).alias("occurrences"),
    )
    contested = marked.filter(pl.col("shared"))
    holders = (
        Holder(*row)
        for row in others.sort("batch", "conversation_id")
        .select("conversation_id", "medark_key", "dialogue_sha256", "batch")
        .iter_rows()
    )
    records = contested.select("record_index", "medark_key", "dialogue_sha256").iter_rows()
    rows, events = tag_batch(batch, list(records), holders)
    resolved = pl.DataFrame(
        {
            "record_index": [r.record_index for r in rows],
            "conversation_id": [r.conversation_id for r in rows],
            "occurrences": [r.occurrences for r in rows],
        },
        schema=IDS_SCHEMA,
    )
    return pl.concat([plain.cast(IDS_SCHEMA), resolved]).sort("record_index"), events


IDS_SCHEMA = pl.Schema(
    {"record_index": pl.Int64, "conversation_id": pl.Utf8, "occurrences": pl.Int64}
)


def collision_rows(batch: str, events: list[TagEvent], files: dict[int, str]) -> pl.DataFrame:
    """``tag_collisions`` rows of a batch's events (``files``: record index -> source file)."""
    return frame(
        (
            {
                "batch": batch,
                "kind": e.kind,
                "medark_key": e.medark_key,
                "dialogue_sha256": e.dialogue_sha256,
                "source_file": files[e.record_index],
                "record_index": e.record_index,
                "conversation_id": e.conversation_id,
                "other_conversation_id": e.other_conversation_id,
                "other_batch": e.other_batch,
            }
            for e in events
        ),
        tables.TAG_COLLISIONS,
    )


KEY_COLUMNS = ("record_index", "medark_key", "dialogue_sha256")


def medark_tagged_dict(tagged: pl.DataFrame) -> dict[str, list[dict[str, str]]]:
    """MedArk's ``tagged.pkl`` content: ``conversation_id -> turns``, by batch and record.

    Plain keys are exactly MedArk's ``sha256(str(dialogue[0]))``; colliding dialogues appear
    under their disambiguated ids, which MedArk's stages never look up but our joins do.
    """
    ordered = tagged.sort("batch", "record_index")
    return {
        cid: json.loads(turns)
        for cid, turns in zip(ordered["conversation_id"], ordered["turns_json"], strict=True)
    }
