"""One arrived file → the raw_dialogues and quarantined_records rows of its batch (streamed chunk
by chunk, ``store_file``), and the one transaction that stores a batch's tables together."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from ark_assets.lib.ingest import tables
from ark_assets.lib.ingest.dialogues import Limits, Rejection
from ark_assets.lib.ingest.stream import CHUNK_BYTES, Chunk, Summary, Where, read_chunks
from ark_assets.lib.ingest.tagging import (
    COLLISION,
    DUPLICATE,
    KEY_COLUMNS,
    collision_rows,
    tag_keys,
)
from ark_assets.lib.tables import frame
from ark_assets.lib.warehouse import table_exists, table_type


@dataclass(frozen=True)
class BatchFrames:
    """All rows of one file at once (small files, tests): ``read_chunks`` concatenated."""

    accepted: pl.DataFrame
    quarantined: pl.DataFrame
    summary: Summary


def ingest_batch(
    batch: str,
    file_name: str,
    data: bytes,
    file_sha256: str,
    limits: Limits,
    now: datetime,
    chunk_bytes: int = CHUNK_BYTES,
) -> BatchFrames:
    where = Where(batch, file_name, file_sha256, now)
    summary = Summary()
    accepted = [frame([], tables.RAW_DIALOGUES)]
    quarantined = [frame([], tables.QUARANTINED_RECORDS)]
    for chunk in read_chunks(data, where, limits, chunk_bytes):
        summary.add(chunk, chunk.accepted)
        accepted.append(chunk.accepted)
        quarantined.append(quarantine_rows(where, chunk.rejections))
    return BatchFrames(pl.concat(accepted), pl.concat(quarantined), summary)


def quarantine_rows(where: Where, rejections: Iterable[Rejection]) -> pl.DataFrame:
    """``quarantined_records`` rows of a file's rejections."""
    return frame(
        (
            {
                "batch": where.batch,
                "source_file": where.source_file,
                "file_sha256": where.file_sha256,
                "record_index": r.record_index,
                "rule": r.rule,
                "message": r.message,
                "excerpt": r.excerpt,
                "quarantined_at": where.ingested_at,
            }
            for r in rejections
        ),
        tables.QUARANTINED_RECORDS,
    )


def store_file(
    conn: duckdb.DuckDBPyConnection,
    schema: str,
    where: Where,
    chunks: Iterable[Chunk],
    keep: Callable[[pl.DataFrame], pl.DataFrame],
    on_rejections: Callable[[list[Rejection]], None] = lambda _: None,
) -> Summary:
    """Replace ``where.batch``'s rows of ``raw_dialogues`` and ``quarantined_records`` with a
    file's chunks, one chunk in memory at a time, in the caller's transaction (both tables
    commit together or not at all). ``keep`` drops forgotten dialogues from each chunk;
    ``on_rejections`` sees each chunk's rejections (to log them)."""
    summary = Summary()
    replace = True
    for chunk in chunks:
        kept = keep(chunk.accepted)
        summary.add(chunk, kept)
        on_rejections(chunk.rejections)
        rows = {
            "raw_dialogues": kept,
            "quarantined_records": quarantine_rows(where, chunk.rejections),
        }
        store_batch(conn, schema, where.batch, rows, replace=replace)
        replace = False
    if replace:  # no chunk at all: still replace the batch's rows with none
        store_batch(conn, schema, where.batch, _EMPTY_INGEST)
    return summary


_EMPTY_INGEST = {
    "raw_dialogues": frame([], tables.RAW_DIALOGUES),
    "quarantined_records": frame([], tables.QUARANTINED_RECORDS),
}


def store_batch(
    conn: duckdb.DuckDBPyConnection,
    schema: str,
    batch: str,
    tables: Mapping[str, pl.DataFrame],
    *,
    replace: bool = True,
) -> None:
    """Replace ``batch``'s rows in each of ``tables`` (name -> rows) inside the caller's
    transaction, so a step that fills two tables commits both or neither (a ``kill -9``
    between two separate writes left raw rows without their quarantine rows).

    Tables are created as the warehouse IO manager creates them (from the frame's Arrow schema),
    which reads them back for downstream assets; rows go in by column name. ``replace=False``
    appends to rows already stored for the batch (the later chunks of one file).
    """
    conn.execute(f"create schema if not exists {schema}")
    for name, rows in tables.items():
        # Read by DuckDB's replacement scan (the local name in the SQL): a registered view keeps
        # every chunk's Arrow data alive until the connection closes (measured: 1.2 GB against
        # 0.5 GB for 400k dialogues).
        batch_rows = rows.to_arrow()
        if not table_exists(conn, schema, name):  # cheaper than binding the rows to find out
            conn.execute(f"create table {schema}.{name} as select * from batch_rows limit 0")
        if replace:
            conn.execute(f"delete from {schema}.{name} where batch = ?", [batch])
        conn.execute(f"insert into {schema}.{name} by name select * from batch_rows")
        del batch_rows


def bound_memory(conn: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Cap DuckDB's memory for this connection's database instance (``IngestRules``): what a
    long file's rows need beyond it goes to disk, so a step's memory does not grow with the
    file."""
    if not _MEMORY_LIMIT.fullmatch(limit):
        raise ValueError(
            f"DuckDB memory limit {limit!r} is not a size such as '256MB' or '2GiB' "
            "(ARK_INGEST_DUCKDB_MEMORY)"
        )
    conn.execute(f"set memory_limit = '{limit}'")


# What bounds the ingest steps' DuckDB (IngestRules.duckdb_memory_limit): measured with 100k and
# 400k dialogues, the raw_dialogues step's peak stays near 0.5 GB with it and grows with the
# file without it (0.9 GB at 100k, 2.7 GB at 400k).
INGEST_MEMORY_LIMIT = "256MB"
_MEMORY_LIMIT = re.compile(r"[0-9]+(\.[0-9]+)?\s*[KMGT]i?B")


@dataclass(frozen=True)
class TagSummary:
    """What tagging one batch did, for the asset's metadata and checks."""

    accepted: int  # rows of the batch in raw_dialogues
    tagged: int
    collisions: int
    duplicates_collapsed: int
    forgotten: int
    repeated_in_batch: int  # conversation ids twice in the batch (must be 0)
    held_by_other_batches: int  # the batch's ids another batch holds too (must be 0)


def tag_stored_batch(
    conn: duckdb.DuckDBPyConnection,
    schema: str,
    batch: str,
    keep: Callable[[pl.DataFrame], pl.DataFrame],
) -> TagSummary:
    """Tag ``batch``'s stored ``raw_dialogues`` rows into ``dialogue_tags`` (read through the
    ``tagged_dialogues`` view) and ``tag_collisions``, in the caller's transaction. Only the keys
    travel through Python (``tagging.tag_keys``, against the other batches' dialogues sharing a
    key or a digest with this one); the text stays where ``raw_dialogues`` stored it."""
    keys = conn.execute(
        f"select record_index, medark_key, dialogue_sha256, source_file, batch, file_sha256 "
        f"from {schema}.raw_dialogues where batch = ? order by record_index",
        [batch],
    ).pl()
    kept = keep(keys)
    tagged_view(conn, schema)
    others = _sharing_holders(conn, schema, batch)
    ids, events = tag_keys(batch, kept.select(KEY_COLUMNS), others)
    files = dict(zip(kept["record_index"], kept["source_file"], strict=True))
    store_batch(
        conn,
        schema,
        batch,
        {
            "tag_collisions": collision_rows(batch, events, files),
            "dialogue_tags": ids.select(
                pl.lit(batch).alias("batch"), "record_index", "conversation_id", "occurrences"
            ),
        },
    )
    tags = f"{schema}.dialogue_tags"
    (held,) = conn.execute(
        f"select count(*) from {tags} t join {tags} o using (conversation_id) "
        "where t.batch = ? and o.batch <> ?",
        [batch, batch],
    ).fetchone() or (0,)
    kinds = [e.kind for e in events]
    return TagSummary(
        accepted=keys.height,
        tagged=ids.height,
        collisions=kinds.count(COLLISION),
        duplicates_collapsed=kinds.count(DUPLICATE),
        forgotten=keys.height - kept.height,
        repeated_in_batch=ids.height - ids["conversation_id"].n_unique(),
        held_by_other_batches=int(held),
    )


def tagged_view(conn: duckdb.DuckDBPyConnection, schema: str) -> None:
    """``dialogue_tags`` and the ``tagged_dialogues`` view over it and ``raw_dialogues``
    (``tables.TAGGED_DIALOGUES``' columns, in order), created when missing.

    A warehouse written before the view held ``tagged_dialogues`` as a table with its own copy
    of every text: its tags move into ``dialogue_tags`` and the copy is dropped (in the caller's
    transaction, so all of it or none)."""
    tagged = f"{schema}.tagged_dialogues"
    tags = f"{schema}.dialogue_tags"
    _create_like(conn, tags, tables.DIALOGUE_TAGS)
    if table_type(conn, schema, "tagged_dialogues") == "BASE TABLE":
        names = ", ".join(c.name for c in tables.DIALOGUE_TAGS)
        conn.execute(f"insert into {tags} by name select {names} from {tagged}")
        conn.execute(f"drop table {tagged}")
    from_tags = {c.name for c in tables.DIALOGUE_TAGS} - {"batch", "record_index"}
    columns = ", ".join(
        f"t.{c.name}" if c.name in from_tags else f"r.{c.name}" for c in tables.TAGGED_DIALOGUES
    )
    conn.execute(
        f"create view if not exists {tagged} as select {columns} "
        f"from {tags} t join {schema}.raw_dialogues r using (batch, record_index)"
    )


def _sharing_holders(conn: duckdb.DuckDBPyConnection, schema: str, batch: str) -> pl.DataFrame:
    """Other batches' tagged dialogues sharing a MedArk key or a digest with ``batch``
    (``tagged_view`` has made the view)."""
    raw = f"{schema}.raw_dialogues"
    return conn.execute(
        f"select conversation_id, medark_key, dialogue_sha256, batch "
        f"from {schema}.tagged_dialogues where batch <> ? and ("
        f"medark_key in (select medark_key from {raw} where batch = ?) or "
        f"dialogue_sha256 in (select dialogue_sha256 from {raw} where batch = ?))",
        [batch, batch, batch],
    ).pl()


def _create_like(conn: duckdb.DuckDBPyConnection, table: str, columns: tuple) -> None:
    """``table`` created as ``store_batch`` creates it (from the typed, empty frame)."""
    conn.register("empty_rows", frame([], columns).to_arrow())
    try:
        conn.execute(f"create table if not exists {table} as select * from empty_rows limit 0")
    finally:
        conn.unregister("empty_rows")
