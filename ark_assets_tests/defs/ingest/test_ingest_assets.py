"""Ingest assets materialized through Dagster on a temp data directory."""

import hashlib
import io
import json
import pickle
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from ark_assets.defs.ingest.assets import RECORDS_ACCOUNTED
from ark_assets.defs.resources import IngestRules
from ark_assets.lib.ingest import stream
from ark_assets.lib.ingest.inbox import batch_key
from ark_assets_tests.conftest import BAD_INPUTS, INGEST_SELECTION, SAMPLES, Platform


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _query(platform: Platform, sql: str) -> list[tuple]:
    with duckdb.connect(str(platform.root / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_bad_inputs_accounted_for_in_metadata_and_tables(platform: Platform) -> None:
    platform.drop(*BAD_INPUTS.glob("*.json*"))
    keys = platform.sense()
    assert len(keys) == 11
    read = accepted = quarantined = 0
    for key in keys:
        result = platform.materialize(
            dg.AssetSelection.assets("raw_dialogues", "quarantined_records"), key
        )
        meta = _metadata(result, "raw_dialogues")
        assert meta["records_read"] == meta["accepted"] + meta["quarantined"]
        assert meta["dagster/row_count"] == meta["accepted"]
        assert _metadata(result, "quarantined_records")["dagster/row_count"] == meta["quarantined"]
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks[RECORDS_ACCOUNTED] and checks["raw_dialogues_contract"]
        read, accepted = read + meta["records_read"], accepted + meta["accepted"]
        quarantined += meta["quarantined"]
    stored = _query(platform, "select count(*) from ark.raw_dialogues")[0][0]
    rules = dict(_query(platform, "select rule, count(*) from ark.quarantined_records group by 1"))
    assert (read, accepted, quarantined) == (39, 14, 25)
    assert stored == accepted and sum(rules.values()) == quarantined
    assert rules["not_utf8"] == 2 and rules["unparseable_file"] == 1


def test_samples_tag_and_export_medark_pickle(platform: Platform) -> None:
    keys = platform.ingest(
        SAMPLES / "dialogues_zh_sample.jsonl", BAD_INPUTS / "06_duplicates.jsonl"
    )
    result = platform.materialize(dg.AssetSelection.assets("tagged_pkl"))
    meta = _metadata(result, "tagged_pkl")
    path = Path(meta["path"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
    tagged = pickle.loads(path.read_bytes())
    plain = {k: v for k, v in tagged.items() if "~" not in k}
    assert all(hashlib.sha256(str(v[0]).encode()).hexdigest() == k for k, v in plain.items())
    # 06_duplicates: two copies of g1 and g1-copy collapse, g1-ws differs by a trailing space,
    # g1-variant shares g1's first turn (collision, kept under a disambiguated id).
    kinds = dict(_query(platform, "select kind, count(*) from ark.tag_collisions group by 1"))
    assert kinds == {"duplicate": 2, "collision": 1}
    assert (meta["entries"], meta["disambiguated_entries"]) == (303, 1)
    assert len(keys) == 2


def test_cross_batch_duplicate_is_collapsed_into_the_first_batch(platform: Platform) -> None:
    source = BAD_INPUTS / "06_duplicates.jsonl"
    platform.ingest(source)
    copy = platform.root / "again.jsonl"
    copy.write_bytes(source.read_bytes() + b"\n")  # other bytes, same dialogues: a new batch
    (key,) = platform.ingest(copy)
    rows = _query(platform, f"select count(*) from ark.tagged_dialogues where batch = '{key}'")
    events = _query(
        platform, f"select kind, count(*) from ark.tag_collisions where batch = '{key}' group by 1"
    )
    assert rows == [(0,)] and dict(events) == {"duplicate": 5}


def test_lost_record_fails_blocking_check_and_stops_tagging(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If parsing ever lost a record silently, the accounting check blocks the tagging step."""
    platform.drop(BAD_INPUTS / "05_non_utf8.jsonl")
    (key,) = platform.sense()
    monkeypatch.setattr(stream, "records_in", lambda lines: 4)
    result = platform.materialize(INGEST_SELECTION, key, raise_on_error=False)
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[RECORDS_ACCOUNTED].passed
    assert checks[RECORDS_ACCOUNTED].metadata["records_read"].value == 4
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("tagged_dialogues") not in materialized


def test_ingest_rules_resource_sets_limits_for_asset_and_contract(platform: Platform) -> None:
    platform.resources["ingest_rules"] = IngestRules(max_turns=2)
    (key,) = platform.ingest(SAMPLES / "dialogues_en_sample.jsonl")
    rules = _query(platform, "select distinct rule from ark.quarantined_records")
    longest = _query(platform, "select max(n_turns) from ark.raw_dialogues")
    assert rules == [("too_many_turns",)] and longest == [(2,)]
    assert key.startswith("dialogues_en_sample.jsonl__")


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def test_hostile_records_are_quarantined_and_their_files_good_records_kept(
    platform: Platform,
) -> None:
    """#18 items 2 and 11: each of these crashed the step, losing the file's good records."""
    good = json.dumps({"turns": [{"patient": "I have a cough", "doctor": "Since when?"}]})
    hostile = [
        "[" * 10_000 + "]" * 10_000,
        '{"turns": [{"patient": "x", "doctor": "y"}], "source_id": ' + "9" * 5_000 + "}",
        '{"turns": [{"patient": "\\ud800", "doctor": "y"}]}',
        '{"turns": [{"patient": "a\\u0000b", "doctor": "y"}]}',
        json.dumps({"turns": [{"patient": "x", "doctor": "y"}], "source": "s\u0000"}),
    ]
    (platform.root / "hostile.jsonl").write_text("\n".join([good, *hostile, good]))
    (platform.root / "hostile.json").write_text("[" + ",".join([good, *hostile]) + "]")
    (platform.root / "lists.parquet").write_bytes(
        _parquet_bytes(
            pl.DataFrame(
                {
                    "dialogue_id": [["a"], ["a"], None, None],
                    "turn_index": [0.0, 1.0, 0.0, 1.0],
                    "role": ["patient", "doctor"] * 2,
                    "text": ["I have a cough", "Since when?", "My head hurts", "Rest."],
                    "source": [["s"], ["s"], None, None],
                }
            )
        )
    )
    (platform.root / "fractions.parquet").write_bytes(
        _parquet_bytes(
            pl.DataFrame(
                {
                    "dialogue_id": ["a", "a"],
                    "turn_index": [0.4, 0.6],
                    "role": ["patient", "doctor"],
                    "text": ["I have a cough", "Since when?"],
                }
            )
        )
    )
    names = ("hostile.jsonl", "hostile.json", "lists.parquet", "fractions.parquet")
    keys = platform.ingest(*(platform.root / n for n in names))  # asserts every run succeeded
    counts = {}
    for key in keys:
        (event,) = platform.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_dialogues"), asset_partitions=[key]),
            limit=1,
        ).records
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}  # type: ignore[union-attr]
        counts[meta["source_file"]] = (meta["records_read"], meta["accepted"], meta["quarantined"])
    assert counts == {
        "hostile.jsonl": (7, 2, 5),
        "hostile.json": (6, 1, 5),
        "lists.parquet": (2, 1, 1),
        "fractions.parquet": (1, 0, 1),
    }
    rows = _query(
        platform,
        "select source_file, record_index, rule from ark.quarantined_records order by all",
    )
    assert ("hostile.jsonl", 1, "wrong_shape") in rows
    assert ("hostile.jsonl", 3, "invalid_character") in rows
    assert ("lists.parquet", 0, "wrong_type") in rows and (
        "fractions.parquet",
        0,
        "wrong_type",
    ) in rows
    stored = _query(platform, "select source_file, count(*) from ark.raw_dialogues group by 1")
    assert dict(stored) == {"hostile.jsonl": 2, "hostile.json": 1, "lists.parquet": 1}


def test_a_hand_added_partition_key_reads_nothing_outside_the_inbox(platform: Platform) -> None:
    """#18 item 4: the key ``../secrets`` made ingest read landing/../secrets/*."""
    secrets = platform.root / "secrets"
    secrets.mkdir()
    (secrets / "notes.jsonl").write_text('{"turns": [{"patient": "private", "doctor": "x"}]}\n')
    (platform.root / "landing").mkdir()
    passwd = Path("/etc/passwd")
    keys = [
        "../secrets",
        batch_key("passwd.jsonl", hashlib.sha256(passwd.read_bytes()).hexdigest()),
    ]
    platform.inbox.mkdir(parents=True)
    (platform.inbox / "passwd.jsonl").symlink_to(passwd)
    platform.instance.add_dynamic_partitions("dialogue_batches", keys)
    for key in keys:
        result = platform.materialize(INGEST_SELECTION, key, raise_on_error=False)
        assert not result.success
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.to_string()  # type: ignore[union-attr]
        assert ("not a batch key" if key.startswith("..") else "no file named like") in message
    assert list((platform.root / "landing").iterdir()) == []
    tables = "select count(*) from information_schema.tables where table_schema = 'ark'"
    assert _query(platform, tables) == [(0,)]  # nothing read, nothing stored


def test_a_file_name_as_long_as_the_filesystem_allows_is_ingested(platform: Platform) -> None:
    long_name = "n" * 249 + ".jsonl"  # 255 bytes: the landing step crashed past ~241
    (platform.root / long_name).write_text(
        json.dumps({"turns": [{"patient": "I have a cough", "doctor": "Since when?"}]})
    )
    (key,) = platform.ingest(platform.root / long_name)
    ((source_file,),) = _query(platform, "select source_file from ark.raw_dialogues")
    assert source_file.endswith("….jsonl") and len(source_file.encode()) <= 241
    assert len(key) <= 214
