"""Deletion requests: tombstones in the warehouse, and the exclusion every dialogue layer applies.

``ark forget`` records one row per thing to forget in ``ark.deletion_requests`` (who, when, why):

- a **conversation**: its ``conversation_id`` and the ``dialogue_sha256`` of its content, so the
  same dialogue stays forgotten if it arrives again inside another file;
- a **source file** (a dialogue batch or a knowledge-base file): its ``file_sha256`` and, for a
  dialogue file, its ``batch`` (partition key).

Each table asset that holds dialogue- or source-derived rows drops the rows a tombstone matches
the next time it is materialized (``Identifiers.exclude``), so a rebuild removes the data from the
DuckDB tables and, through ``kb_sources``, from the Chroma index. Tombstones are never deleted:
they are the record that the request was honoured.

The table holds identifiers only (hashes, partition keys, file names), never dialogue text.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl

from ark_assets.lib.tables import Column, frame
from ark_assets.lib.warehouse import table_exists

TABLE = "deletion_requests"
CONVERSATION = "conversation"
SOURCE_FILE = "source_file"

DELETION_REQUESTS = (
    Column("request_id", pl.Utf8, "One id per `ark forget` call (shared by its rows)."),
    Column("kind", pl.Utf8, "conversation or source_file."),
    Column("target", pl.Utf8, "What was asked for, as given (key, file name or path name)."),
    Column("conversation_id", pl.Utf8, "Forgotten conversation (kind conversation)."),
    Column("dialogue_sha256", pl.Utf8, "Its content digest: the same dialogue resent is dropped."),
    Column("file_sha256", pl.Utf8, "Forgotten file's sha256 (kind source_file)."),
    Column("batch", pl.Utf8, "Dialogue batch (partition key) of that file, if it is one."),
    Column("source_name", pl.Utf8, "File name as it arrived."),
    Column("requested_by", pl.Utf8, "Who asked (--by, default the OS user)."),
    Column("reason", pl.Utf8, "Why (--reason), e.g. a ticket number; never personal data."),
    Column("requested_at", pl.Datetime("us", "UTC"), "When the tombstone was recorded."),
)


@dataclass(frozen=True)
class Tombstone:
    """One thing to forget; at least one identifying field is set."""

    kind: str
    target: str
    conversation_id: str | None = None
    dialogue_sha256: str | None = None
    file_sha256: str | None = None
    batch: str | None = None
    source_name: str | None = None


# Identifying columns (of a tombstone, or of a table's rows) and the set each one's values go to.
IDENTIFYING_COLUMNS = (
    ("conversation_id", "conversation_ids"),
    ("dialogue_sha256", "dialogue_sha256s"),
    ("batch", "batches"),
    ("file_sha256", "file_sha256s"),
)


@dataclass(frozen=True)
class Identifiers:
    """Conversation ids, dialogue digests, batches and file digests: everything under the
    tombstones (``Warehouse.forgotten()``: the filter each layer applies), or everything an
    artifact was built from (the audit matches tombstones against it)."""

    conversation_ids: frozenset[str] = field(default_factory=frozenset)
    dialogue_sha256s: frozenset[str] = field(default_factory=frozenset)
    batches: frozenset[str] = field(default_factory=frozenset)
    file_sha256s: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, requests: pl.DataFrame | None) -> Identifiers:
        """Every identifier a set of tombstones names."""
        if requests is None or requests.is_empty():
            return cls()
        return cls(
            **{
                attribute: frozenset(requests[column].drop_nulls().to_list())
                for column, attribute in IDENTIFYING_COLUMNS
            }
        )

    def __bool__(self) -> bool:
        return any(getattr(self, attribute) for _, attribute in IDENTIFYING_COLUMNS)

    def matched_on(self, row: Mapping[str, Any]) -> list[str]:
        """The identifying columns of ``row`` (a tombstone) whose value is among these."""
        return [
            column
            for column, attribute in IDENTIFYING_COLUMNS
            if row.get(column) and row[column] in getattr(self, attribute)
        ]

    def mask(self, rows: pl.DataFrame) -> pl.Series:
        """True for each row these identifiers match, by whichever identifying columns it has."""
        hit = pl.lit(False)
        for column, attribute in IDENTIFYING_COLUMNS:
            values = getattr(self, attribute)
            if values and column in rows.columns:
                hit = hit | pl.col(column).is_in(list(values))
        return rows.select(hit.fill_null(False).alias("forgotten")).to_series()

    def exclude(self, rows: pl.DataFrame) -> pl.DataFrame:
        """``rows`` without those these identifiers match."""
        if not self or rows.is_empty():
            return rows
        return rows.filter(~self.mask(rows))

    def count(self, rows: pl.DataFrame) -> int:
        return int(self.mask(rows).sum()) if self and not rows.is_empty() else 0


def read_requests(conn: duckdb.DuckDBPyConnection, schema: str) -> pl.DataFrame:
    """Every tombstone, oldest first (an empty typed frame when none was ever recorded)."""
    if not table_exists(conn, schema, TABLE):
        return frame([], DELETION_REQUESTS)
    return conn.execute(f"select * from {schema}.{TABLE} order by requested_at").pl()


def record_requests(
    conn: duckdb.DuckDBPyConnection,
    schema: str,
    tombstones: Iterable[Tombstone],
    *,
    requested_by: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> pl.DataFrame:
    """Append one row per tombstone (one request id for the call); returns the rows written."""
    request_id = uuid.uuid4().hex[:16]
    at = now or datetime.now(UTC)
    who = requested_by or getpass.getuser()
    rows = frame(
        (
            {
                "request_id": request_id,
                "kind": t.kind,
                "target": t.target,
                "conversation_id": t.conversation_id,
                "dialogue_sha256": t.dialogue_sha256,
                "file_sha256": t.file_sha256,
                "batch": t.batch,
                "source_name": t.source_name,
                "requested_by": who,
                "reason": reason,
                "requested_at": at,
            }
            for t in tombstones
        ),
        DELETION_REQUESTS,
    )
    conn.execute(f"create schema if not exists {schema}")
    if not table_exists(conn, schema, TABLE):
        conn.execute(f"create table {schema}.{TABLE} as select * from rows limit 0")
    conn.execute(f"insert into {schema}.{TABLE} select * from rows")
    return rows


class NothingToForget(LookupError):
    """The target matches no conversation and no source file the platform holds."""


def _rows(conn: duckdb.DuckDBPyConnection, schema: str, table: str, sql: str, params: list) -> list:
    if not table_exists(conn, schema, table):
        return []
    return conn.execute(sql.format(table=f"{schema}.{table}"), params).fetchall()


def resolve_conversation(conn: duckdb.DuckDBPyConnection, schema: str, key: str) -> list[Tombstone]:
    """The conversation with this id; else every conversation with this MedArk key."""
    sql = (
        "select distinct conversation_id, dialogue_sha256 from {table} "
        "where conversation_id = ? or (medark_key = ? and not exists "
        "(select 1 from {table} where conversation_id = ?)) order by conversation_id"
    )
    rows = _rows(conn, schema, "tagged_dialogues", sql, [key, key, key])
    return [
        Tombstone(CONVERSATION, key, conversation_id=cid, dialogue_sha256=digest)
        for cid, digest in rows
    ]


def resolve_source_file(
    conn: duckdb.DuckDBPyConnection,
    schema: str,
    target: str,
    file_sha256: str | None,
    batches: Iterable[str] = (),
    arrived: Mapping[str, str] | None = None,
) -> list[Tombstone]:
    """Dialogue batches and KB files whose content digest (or, without one, whose name as it
    arrived, exactly) match ``target``.

    ``batches`` are the registered partition keys (``<name>__<sha12>``): with a digest, a
    registered batch that never materialized is matched on its key's digest prefix. A key holds
    the *sanitised* name (``my file.jsonl`` → ``my_file.jsonl``), so names are never matched on
    keys: ``arrived`` maps the registered batches known to have arrived under the name
    ``target`` (from their landed or inbox copy) to that file's sha256."""
    found: dict[tuple[str, str | None], Tombstone] = {}
    where = "file_sha256 = ?" if file_sha256 else "source_file = ?"
    value = file_sha256 or target
    for table, has_batch in (
        ("raw_dialogues", True),
        ("quarantined_records", True),
        ("kb_sources", False),
        ("kb_quarantined_records", False),
    ):
        columns = "file_sha256, source_file" + (", batch" if has_batch else ", null")
        sql = f"select distinct {columns} from {{table}} where {where}"
        for digest, name, batch in _rows(conn, schema, table, sql, [value]):
            found[(digest, batch)] = Tombstone(
                SOURCE_FILE, target, file_sha256=digest, batch=batch, source_name=name
            )
    pending: dict[str, tuple[str | None, str | None]] = {}  # batch -> (file sha256, name)
    if file_sha256:
        for batch in batches:
            if file_sha256.startswith(batch.rpartition("__")[2]):
                pending[batch] = (file_sha256, None)
    else:
        pending = {batch: (digest, target) for batch, digest in (arrived or {}).items()}
    for batch, (digest, name) in pending.items():
        if not any(t.batch == batch for t in found.values()):
            found[(digest or batch, batch)] = Tombstone(
                SOURCE_FILE, target, file_sha256=digest, batch=batch, source_name=name
            )
    return sorted(found.values(), key=lambda t: (t.batch or "", t.source_name or ""))


def batches_holding(
    conn: duckdb.DuckDBPyConnection, schema: str, tombstones: Iterable[Tombstone]
) -> list[str]:
    """Dialogue batches holding what the tombstones name: their own batches, and every batch
    with a copy of a forgotten dialogue's content."""
    tombstones = list(tombstones)
    digests = [t.dialogue_sha256 for t in tombstones if t.dialogue_sha256]
    batches = {t.batch for t in tombstones if t.batch}
    if digests:
        sql = "select distinct batch from {table} where list_contains(?, dialogue_sha256)"
        batches |= {batch for (batch,) in _rows(conn, schema, "raw_dialogues", sql, [digests])}
    return sorted(batches)
