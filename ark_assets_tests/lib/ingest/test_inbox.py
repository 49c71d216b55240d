"""Batch keys, inbox scanning and landing of arrived files."""

import os
from pathlib import Path

import pytest

from ark_assets.lib.hashing import sha256_bytes
from ark_assets.lib.ingest.inbox import (
    MAX_KEY_NAME_CHARS,
    NotARegularFile,
    ScanCache,
    batch_digest,
    batch_file_name,
    batch_identity,
    batch_key,
    copy_into,
    is_batch_key,
    land,
    read_regular,
    scan,
    symbolic_links,
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


def test_symbolic_links_in_the_inbox_are_never_read(tmp_path: Path) -> None:
    inbox, landing = tmp_path / "inbox", tmp_path / "landing"
    inbox.mkdir()
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(b'{"turns": [{"patient": "private", "doctor": "private"}]}\n')
    (inbox / "passwd.jsonl").symlink_to("/etc/passwd")
    (inbox / "secret.jsonl").symlink_to(secret)
    (inbox / "folder.jsonl").mkdir()
    assert scan(inbox, ScanCache()) == []
    assert symbolic_links(inbox) == ["passwd.jsonl", "secret.jsonl"]
    # A key for the link target's content, as if registered by hand: still not read or copied.
    key = batch_key("secret.jsonl", sha256_bytes(secret.read_bytes()))
    with pytest.raises(FileNotFoundError):
        land(key, inbox, landing)
    assert not landing.exists()


def test_a_file_swapped_for_a_link_after_listing_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("private")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(NotARegularFile, match="symbolic link"):
        read_regular(tmp_path / "link")


@pytest.mark.parametrize("key", ["../../outside", "../x__0123456789ab", "a/b__0123456789ab", ""])
def test_a_hand_made_key_is_refused_before_any_path_is_built(tmp_path: Path, key: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.jsonl").write_text("private")  # what landing/../../outside points at
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    with pytest.raises(ValueError, match="not a batch key"):
        land(key, tmp_path / "data" / "inbox", landing)
    assert not is_batch_key(key)


def test_file_names_of_any_length_land(tmp_path: Path) -> None:
    inbox, landing = tmp_path / "inbox", tmp_path / "landing"
    inbox.mkdir()
    data = b'[{"patient": "p", "doctor": "d"}]\n'
    name = "对话" * 40 + "x" * 9 + ".jsonl"  # the longest a name can be: 255 bytes
    assert len(name.encode()) == 255
    (inbox / name).write_bytes(data)
    (arrived,) = scan(inbox, ScanCache())
    assert len(arrived.key) <= MAX_KEY_NAME_CHARS + 14 and arrived.key.endswith(
        f".jsonl__{sha256_bytes(data)[:12]}"
    )
    landed, read, _ = land(arrived.key, inbox, landing)
    assert read == data and landed.endswith(".jsonl") and len(landed.encode()) <= 241
    assert land(arrived.key, inbox, landing)[0] == landed  # the same name on every read


def test_a_name_that_is_not_utf8_lands_under_a_printable_name(tmp_path: Path) -> None:
    inbox, landing = tmp_path / "inbox", tmp_path / "landing"
    inbox.mkdir()
    with open(os.path.join(os.fsencode(inbox), b"caf\xe9.jsonl"), "wb") as handle:
        handle.write(b"[]")
    (arrived,) = scan(inbox, ScanCache())
    name, _, _ = land(arrived.key, inbox, landing)
    assert name == "caf\ufffd.jsonl"
    name.encode("utf-8")


def test_copy_into_takes_names_as_long_as_the_filesystem_does(tmp_path: Path) -> None:
    source = tmp_path / ("n" * 249 + ".jsonl")
    source.write_bytes(b"[]")
    (dropped,) = copy_into(tmp_path / "inbox", [source])
    assert dropped.read_bytes() == b"[]" and sorted(os.listdir(tmp_path / "inbox")) == [source.name]


def test_the_same_bytes_in_another_format_are_another_input() -> None:
    empty = sha256_bytes(b"")
    identities = {batch_identity(batch_key(f"e.{s}", empty)) for s in ("jsonl", "json", "csv")}
    assert len(identities) == 3
    assert batch_identity(batch_key("A.JSONL", empty)) == batch_identity(
        batch_key("b.jsonl", empty)
    )
