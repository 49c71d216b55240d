"""`ark sql`: a read-only query on the platform's warehouse, printed as a table, CSV or JSON
lines; a write or a runaway query ends with a message, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ark_assets.cli import main
from ark_assets.lib.warehouse import connect


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    database = tmp_path / "warehouse.duckdb"
    with connect(database) as conn:
        conn.execute(
            "create schema marts; create table marts.dialogue_stats as "
            "select 'b1' as batch, 'fixture' as source, 3 as dialogues"
        )
    monkeypatch.setenv("ARK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ARK_WAREHOUSE", raising=False)
    return database


def test_ark_sql_prints_the_rows(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["sql", "select batch, dialogues from marts.dialogue_stats"])
    out = capsys.readouterr().out
    assert "batch" in out and "b1" in out and "3" in out
    main(["sql", "select batch, dialogues from marts.dialogue_stats", "--format", "csv"])
    assert capsys.readouterr().out.splitlines() == ["batch,dialogues", "b1,3"]
    main(["sql", "select 1 as a, 2 as a", "--format", "jsonl"])
    assert capsys.readouterr().out.strip() == '{"a": 1, "a_1": 2}'


def test_ark_sql_refuses_writes_and_stops_long_queries(warehouse: Path) -> None:
    with pytest.raises(SystemExit, match="read-only"):
        main(["sql", "delete from marts.dialogue_stats"])
    with pytest.raises(SystemExit, match="was stopped"):
        main(["sql", "select count(*) from range(1000000000000)", "--timeout", "0.5"])
    with connect(warehouse) as conn:  # the lock is free again and nothing was deleted
        assert conn.execute("select count(*) from marts.dialogue_stats").fetchone() == (1,)


def test_ark_sql_without_a_warehouse_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARK_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("ARK_WAREHOUSE", raising=False)
    with pytest.raises(SystemExit, match="ark demo"):
        main(["sql", "select 1"])
