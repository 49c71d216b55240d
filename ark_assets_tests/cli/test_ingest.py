"""`ark ingest PATH…`: the sensor's registration and ingest_job, from the command line."""

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ark_assets.cli import main
from ark_assets.lib.ingest import stream
from ark_assets.testing.resources import data_dir_environment

GOOD = {"turns": [{"patient": "I have a cough", "doctor": "Since when?"}]}


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    with data_dir_environment(tmp_path / "data"):
        yield tmp_path / "data"


def test_ingest_prints_counts_per_file_and_skips_what_is_already_ingested(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dialogues = tmp_path / "dialogues.jsonl"
    dialogues.write_text(f'{json.dumps(GOOD)}\nnot json\n{json.dumps(GOOD)[:-1]}, "x": 1}}\n')
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    main(["ingest", str(dialogues), str(notes)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dialogues.jsonl: dialogues.jsonl__") and out[0].endswith(
        "read 3  accepted 2  quarantined 1  forgotten 0"
    )
    assert out[1].endswith("read 1  accepted 0  quarantined 1  forgotten 0")
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        tagged = conn.execute("select count(*) from ark.tagged_dialogues").fetchone()
    assert tagged == (1,)  # the two accepted records are one dialogue, collapsed

    main(["ingest", str(dialogues)])
    (again,) = capsys.readouterr().out.splitlines()
    assert "already ingested as dialogues.jsonl__" in again and "accepted 2" in again


def test_ingest_exits_non_zero_naming_the_failed_check(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "records_in", lambda lines: 99)
    dialogues = tmp_path / "lost.jsonl"
    dialogues.write_text(json.dumps(GOOD))
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", str(dialogues)])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "check records_accounted on raw_dialogues failed" in out


def test_ingest_refuses_a_path_that_is_not_a_file(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", str(tmp_path / "missing.jsonl"), str(tmp_path)])
    assert exit_info.value.code == 2
    assert "not a file" in capsys.readouterr().err
    assert not (data / "inbox").exists()
