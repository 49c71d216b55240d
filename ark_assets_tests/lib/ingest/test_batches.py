"""Storing a batch and tagging it: ``tagged_dialogues`` is a view over ``raw_dialogues`` and
``dialogue_tags``, so a dialogue's text is stored once; warehouses holding the old table move."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from ark_assets.lib.hashing import sha256_file
from ark_assets.lib.ingest import tables
from ark_assets.lib.ingest.batches import store_file, tag_stored_batch
from ark_assets.lib.ingest.dialogues import Limits
from ark_assets.lib.ingest.stream import Where, read_chunks
from ark_assets.lib.warehouse import table_type
from ark_assets.testing.dialogues import generate_dialogues

SCHEMA = "ark"
NOW = datetime(2026, 12, 2, tzinfo=UTC)


def _store(conn: duckdb.DuckDBPyConnection, path: Path, batch: str) -> None:
    where = Where(batch, path.name, sha256_file(path), NOW)
    store_file(conn, SCHEMA, where, read_chunks(path, where, Limits()), keep=lambda rows: rows)


def _file(tmp_path: Path, name: str, dialogues: list[dict]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dialogues))
    return path


def _tagged(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return conn.execute(
        f"select * from {SCHEMA}.tagged_dialogues order by batch, record_index"
    ).pl()


def test_tagged_dialogues_reads_the_raw_rows_and_stores_only_the_tags(tmp_path: Path) -> None:
    dialogues = list(generate_dialogues(12))
    dialogues.append(dialogues[3])  # an exact duplicate: collapsed into record 3
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    _store(conn, _file(tmp_path, "a.jsonl", dialogues), "a")
    summary = tag_stored_batch(conn, SCHEMA, "a", keep=lambda rows: rows)

    assert table_type(conn, SCHEMA, "tagged_dialogues") == "VIEW"
    tag_columns = conn.execute(f"describe {SCHEMA}.dialogue_tags").pl()["column_name"].to_list()
    assert tag_columns == [c.name for c in tables.DIALOGUE_TAGS]  # no text of its own
    tagged = _tagged(conn)
    assert tagged.columns == [c.name for c in tables.TAGGED_DIALOGUES]
    assert (summary.tagged, summary.duplicates_collapsed) == (12, 1)
    assert tagged.height == 12
    assert tagged.filter(pl.col("record_index") == 3)["occurrences"].to_list() == [2]
    raw = conn.execute(f"select * from {SCHEMA}.raw_dialogues").pl()
    joined = tagged.join(raw, on=["batch", "record_index"], suffix="_raw")
    for column in ("turns_json", "medark_key", "source_id", "n_turns"):
        assert joined[column].to_list() == joined[f"{column}_raw"].to_list()
    assert (tagged["conversation_id"] == tagged["medark_key"]).all()  # no collision here
    assert json.loads(tagged["turns_json"][0]) == dialogues[0]["turns"]


def test_retagging_a_batch_replaces_its_tags(tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    _store(conn, _file(tmp_path, "a.jsonl", list(generate_dialogues(5))), "a")
    first = tag_stored_batch(conn, SCHEMA, "a", keep=lambda rows: rows)
    before = _tagged(conn)
    again = tag_stored_batch(conn, SCHEMA, "a", keep=lambda rows: rows)
    assert again == first
    assert _tagged(conn).equals(before)
    # Forgetting a dialogue at tagging time takes it out of the view, its raw row stays.
    gone = before["record_index"][1]
    tag_stored_batch(conn, SCHEMA, "a", lambda rows: rows.filter(pl.col("record_index") != gone))
    assert gone not in _tagged(conn)["record_index"].to_list()
    assert conn.execute(f"select count(*) from {SCHEMA}.raw_dialogues").fetchone() == (5,)
    # A raw row removed (a deletion request's rematerialized batch) leaves the view with it.
    removed = before["record_index"][2]
    conn.execute(f"delete from {SCHEMA}.raw_dialogues where record_index = ?", [removed])
    assert removed not in _tagged(conn)["record_index"].to_list()
    assert _tagged(conn).height == 3


def test_a_warehouse_with_the_old_tagged_table_keeps_its_ids_and_drops_the_copy(
    tmp_path: Path,
) -> None:
    dialogues = list(generate_dialogues(6, seed=7))
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    _store(conn, _file(tmp_path, "a.jsonl", dialogues[:4]), "a")
    tag_stored_batch(conn, SCHEMA, "a", keep=lambda rows: rows)
    # What an earlier version left: tagged_dialogues as a table with its own copy of the text,
    # and one id that the keys alone would not give (kept as it was).
    old = _tagged(conn).with_columns(
        conversation_id=pl.when(pl.col("record_index") == 0)
        .then(pl.col("medark_key") + "~kept")
        .otherwise(pl.col("conversation_id"))
    )
    conn.execute(f"drop view {SCHEMA}.tagged_dialogues")
    conn.execute(f"drop table {SCHEMA}.dialogue_tags")
    conn.execute(f"create table {SCHEMA}.tagged_dialogues as select * from old")

    # The next batch shares a dialogue with "a": the old table's holder keeps it.
    _store(conn, _file(tmp_path, "b.jsonl", [dialogues[0], *dialogues[4:]]), "b")
    summary = tag_stored_batch(conn, SCHEMA, "b", keep=lambda rows: rows)

    assert table_type(conn, SCHEMA, "tagged_dialogues") == "VIEW"
    tagged = _tagged(conn)
    assert tagged.filter(pl.col("batch") == "a").equals(old)
    assert (summary.tagged, summary.duplicates_collapsed) == (2, 1)
    assert tagged.filter(pl.col("batch") == "b").height == 2
    assert tagged["conversation_id"].n_unique() == tagged.height == 6
