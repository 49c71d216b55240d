"""`ark forget` on hostile targets: exact names only, paths only inside the file stores, and a
clean refusal (never a traceback) for what cannot name anything. All data is FAKE."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ark_assets.cli import main
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.lib.hashing import sha256_file
from ark_assets.lib.ingest.inbox import batch_key

_DIALOGUE = {"language": "en", "turns": [{"patient": "I have a cough.", "doctor": "Since when?"}]}


@dataclass
class Home:
    data: Path

    @property
    def inbox(self) -> Path:
        return self.data / "inbox"

    def arrive(self, name: str, source_id: str) -> str:
        """A file dropped into the inbox and registered as a batch (as the sensor does), never
        materialized; returns its batch key."""
        path = self.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**_DIALOGUE, "source_id": source_id}) + "\n")
        key = batch_key(name, sha256_file(path))
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(dialogue_batches.name, [key])
        return key

    def requests(self) -> list[tuple[str | None, str | None]]:
        database = self.data / "warehouse.duckdb"
        if not database.exists():
            return []
        with duckdb.connect(str(database), read_only=True) as conn:
            tables = conn.execute(
                "select 1 from information_schema.tables where table_name = 'deletion_requests'"
            ).fetchall()
            sql = "select batch, source_name from ark.deletion_requests order by batch"
            return conn.execute(sql).fetchall() if tables else []


@pytest.fixture
def home(cli_data_dir: Path, tmp_path: Path) -> Home:
    return Home(cli_data_dir)


def _refusal(target: str) -> str:
    """What `ark forget TARGET` exits with; a traceback would fail the test instead."""
    with pytest.raises(SystemExit) as exited:
        main(["forget", target])
    assert isinstance(exited.value.code, str), exited.value.code
    return exited.value.code


def test_a_name_matches_exactly_the_file_that_arrived_under_it(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    spaced = home.arrive("my file.jsonl", "spaced")  # batch my_file.jsonl__…
    underscored = home.arrive("my_file.jsonl", "underscored")
    assert spaced.split("__")[0] == underscored.split("__")[0] == "my_file.jsonl"

    main(["forget", "my_file.jsonl"])
    assert home.requests() == [(underscored, "my_file.jsonl")]
    assert (home.inbox / "my file.jsonl").exists() and not (home.inbox / "my_file.jsonl").exists()
    assert "'my_file.jsonl' sha256" in capsys.readouterr().out

    # The sanitised name of the other file names nothing; its exact name does.
    assert "neither a conversation key" in _refusal("my_file.jsonl")
    main(["forget", "my file.jsonl"])
    assert home.requests() == sorted([(underscored, "my_file.jsonl"), (spaced, "my file.jsonl")])
    assert not (home.inbox / "my file.jsonl").exists()


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("", "the target is empty"),
        ("   ", "the target is empty"),
        ("key\0with a NUL", "NUL character"),
        ("k" * 100_000, "100,000 characters long"),
        ("/" + "d" * 300 + "/x.jsonl", "is not in an inbox or landing area"),  # ENAMETOOLONG
        ("/etc/passwd", "is not in an inbox or landing area"),
        ("/dev/zero", "is not in an inbox or landing area"),
        ("../../../../../../etc/passwd", "is not in an inbox or landing area"),
    ],
)
def test_targets_that_cannot_name_anything_are_refused(
    home: Home, target: str, reason: str
) -> None:
    home.arrive("kept.jsonl", "kept")
    assert reason in _refusal(target)
    assert home.requests() == []


def test_a_path_is_hashed_only_inside_the_inbox_or_landing_area(home: Home, tmp_path: Path) -> None:
    key = home.arrive("dialogues.jsonl", "d1")
    outside = tmp_path / "elsewhere" / "copy.jsonl"
    outside.parent.mkdir()
    outside.write_bytes((home.inbox / "dialogues.jsonl").read_bytes())
    link = home.inbox / "link.jsonl"
    link.symlink_to(outside)  # resolves outside: refused like the path it points to
    for target in (outside, link):
        assert "is not in an inbox or landing area" in _refusal(str(target))
    assert "is not a file" in _refusal(str(home.inbox))
    assert home.requests() == []

    main(["forget", str(home.inbox / "dialogues.jsonl")])
    assert home.requests() == [(key, None)]
    assert outside.exists() and link.is_symlink()  # neither is a copy the platform keeps
