"""Tombstones: recording, reading, resolving a target, and the exclusion filter."""

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ark_assets.lib.compliance.tombstones import (
    CONVERSATION,
    SOURCE_FILE,
    Identifiers,
    Tombstone,
    read_requests,
    record_requests,
    resolve_conversation,
    resolve_source_file,
)
from ark_assets.lib.ingest.tables import TAGGED_DIALOGUES
from ark_assets.lib.tables import frame as table_frame

SCHEMA = "ark"


@pytest.fixture
def conn(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    connection.execute(f"create schema {SCHEMA}")
    tagged = table_frame(
        [
            _tagged("k1", "k1", "d1", "a.jsonl__aaaaaaaaaaaa"),
            _tagged("k2", "k2", "d2", "a.jsonl__aaaaaaaaaaaa"),
            _tagged("k2~d3", "k2", "d3", "b.jsonl__bbbbbbbbbbbb"),  # collision with k2
        ],
        TAGGED_DIALOGUES,
    )
    raw = tagged.select("batch", "source_file", "dialogue_sha256").with_columns(
        file_sha256=pl.col("batch").str.slice(-12).str.pad_end(64, "0")
    )
    for name, frame in (("tagged_dialogues", tagged), ("raw_dialogues", raw)):
        arrow = frame.to_arrow()  # noqa: F841  (read by name below)
        connection.execute(f"create table {SCHEMA}.{name} as select * from arrow")
    return connection


def _tagged(cid: str, key: str, digest: str, batch: str) -> dict:
    return {
        "batch": batch, "conversation_id": cid, "medark_key": key, "dialogue_sha256": digest,
        "source_file": batch.split("__")[0], "record_index": 0, "source": None, "source_id": None,
        "language": "zh", "n_turns": 1, "turns_json": "[]", "occurrences": 1,
    }  # fmt: skip


def test_requests_round_trip_with_one_id_per_call(conn: duckdb.DuckDBPyConnection) -> None:
    assert read_requests(conn, SCHEMA).is_empty()
    at = datetime(2026, 1, 2, tzinfo=UTC)
    stones = [Tombstone(CONVERSATION, "k1", conversation_id="k1", dialogue_sha256="d1")]
    record_requests(conn, SCHEMA, stones, requested_by="dpo", reason="ticket 7", now=at)
    record_requests(conn, SCHEMA, [Tombstone(SOURCE_FILE, "x", file_sha256="f" * 64)])
    rows = read_requests(conn, SCHEMA)
    assert rows.height == 2 and rows["request_id"].n_unique() == 2
    assert rows.row(0, named=True) | {"request_id": None} == {
        "request_id": None, "kind": "conversation", "target": "k1", "conversation_id": "k1",
        "dialogue_sha256": "d1", "file_sha256": None, "batch": None, "source_name": None,
        "requested_by": "dpo", "reason": "ticket 7", "requested_at": at,
    }  # fmt: skip
    forgotten = Identifiers.of(rows)
    assert forgotten.conversation_ids == {"k1"} and forgotten.file_sha256s == {"f" * 64}


def test_a_conversation_id_wins_over_a_shared_medark_key(conn: duckdb.DuckDBPyConnection) -> None:
    (exact,) = resolve_conversation(conn, SCHEMA, "k2")
    assert (exact.conversation_id, exact.dialogue_sha256) == ("k2", "d2")
    (collided,) = resolve_conversation(conn, SCHEMA, "k2~d3")
    assert collided.dialogue_sha256 == "d3"
    assert resolve_conversation(conn, SCHEMA, "nope") == []


def test_source_files_resolve_by_digest_name_or_registered_batch(
    conn: duckdb.DuckDBPyConnection,
) -> None:
    digest = "aaaaaaaaaaaa".ljust(64, "0")
    (by_digest,) = resolve_source_file(conn, SCHEMA, "renamed.jsonl", digest)
    assert (by_digest.batch, by_digest.source_name) == ("a.jsonl__aaaaaaaaaaaa", "a.jsonl")
    (by_name,) = resolve_source_file(conn, SCHEMA, "b.jsonl", None)
    assert by_name.file_sha256 == "bbbbbbbbbbbb".ljust(64, "0")
    # Registered by the sensor but never materialized: the partition key knows its digest…
    pending_digest = "cccccccccccc".ljust(64, "1")
    registered = ["c.jsonl__cccccccccccc"]
    (pending,) = resolve_source_file(conn, SCHEMA, "x.jsonl", pending_digest, registered)
    assert (pending.batch, pending.file_sha256) == ("c.jsonl__cccccccccccc", pending_digest)
    # …and, by name, the caller's lookup of what arrived under exactly that name.
    arrived = {"c.jsonl__cccccccccccc": pending_digest}
    (named,) = resolve_source_file(conn, SCHEMA, "c.jsonl", None, registered, arrived)
    assert (named.batch, named.file_sha256, named.source_name) == (
        "c.jsonl__cccccccccccc", pending_digest, "c.jsonl",
    )  # fmt: skip
    assert resolve_source_file(conn, SCHEMA, "d.jsonl", None, registered) == []


def test_a_name_never_matches_the_sanitised_name_in_a_batch_key(
    conn: duckdb.DuckDBPyConnection,
) -> None:
    # "my file.jsonl" arrived as batch my_file.jsonl__…: forgetting "my_file.jsonl" must not
    # touch it, materialized or not.
    sanitised = "my_file.jsonl__dddddddddddd"
    assert resolve_source_file(conn, SCHEMA, "my_file.jsonl", None, [sanitised]) == []
    assert resolve_source_file(conn, SCHEMA, "my_file.jsonl", None, [sanitised], {}) == []
    (exact,) = resolve_source_file(
        conn, SCHEMA, "my file.jsonl", None, [sanitised], {sanitised: "d" * 64}
    )
    assert exact.batch == sanitised


def test_exclusion_matches_any_identifying_column() -> None:
    rows = pl.DataFrame(
        {
            "conversation_id": ["k1", "k2", "k3", "k4"],
            "dialogue_sha256": ["d1", "d2", "d3", "d4"],
            "batch": ["b1", "b1", "b2", "b3"],
        }
    )
    forgotten = Identifiers(
        conversation_ids=frozenset({"k1"}),
        dialogue_sha256s=frozenset({"d2"}),
        batches=frozenset({"b3"}),
        file_sha256s=frozenset({"not a column here"}),
    )
    assert forgotten.exclude(rows)["conversation_id"].to_list() == ["k3"]
    assert forgotten.count(rows) == 3
    assert Identifiers().exclude(rows).equals(rows) and not Identifiers()
    only_ids = rows.select("conversation_id")
    assert forgotten.exclude(only_ids)["conversation_id"].to_list() == ["k2", "k3", "k4"]
