"""Batch keys, inbox scanning and landing of arrived files."""

from pathlib import Path

import pytest

from ark_assets.lib.hashing import sha256_bytes
from ark_assets.lib.ingest.inbox import (
    ScanCache,
    batch_digest,
    batch_file_name,
    batch_key,
    copy_into,
    land,
    scan,
)


def test_batch_key_is_readable_and_content_addressed() -> None:
    key = batch_key("my file (1).jsonl", "ab" * 32)
    assert key == "my_file_1_.jsonl__abababababab"
    assert batch_digest(key) == "abababababab"
    assert batch_file_name(key) == "my_file_1_.jsonl"


def test_scan_skips_in_flight_files_and_reuses_digests(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("[]")
    (tmp_path / ".b.jsonl.tmp").write_text("[]")
    (tmp_path / "c.jsonl.part").write_text("[]")
    cache = ScanCache()
    (arrived,) = scan(tmp_path, cache)
    assert arrived.path.name == "a.jsonl"
    assert arrived.sha256 == sha256_bytes(b"[]")
    restored = ScanCache.from_cursor(cache.to_cursor())
    assert restored.entries == cache.entries
    (tmp_path / "a.jsonl").unlink()
    assert scan(tmp_path, restored) == [] and restored.entries == {}


def test_land_copies_once_and_survives_inbox_changes(tmp_path: Path) -> None:
    inbox, landing = tmp_path / "inbox", tmp_path / "landing"
    source = tmp_path / "d.jsonl"
    source.write_bytes(b'[{"patient": "p", "doctor": "d"}]\n')
    copy_into(inbox, [source])
    key = batch_key("d.jsonl", sha256_bytes(source.read_bytes()))
    name, data, digest = land(key, inbox, landing)
    assert (name, data) == ("d.jsonl", source.read_bytes())
    (inbox / "d.jsonl").write_bytes(b"changed")
    assert land(key, inbox, landing) == (name, data, digest)


def test_land_explains_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="drop the original file"):
        land("gone.jsonl__0123456789ab", tmp_path / "inbox", tmp_path / "landing")
