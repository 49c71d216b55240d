"""What the command tests share: a data dir and Dagster home of their own."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cli_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ARK_DATA_DIR`` and ``DAGSTER_HOME`` (created) under ``tmp_path`` and the offline
    hashing embedder, as a command run from a fresh checkout sees them; the data dir."""
    monkeypatch.setenv("ARK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("ARK_EMBEDDER", "hashing")
    (tmp_path / "dagster_home").mkdir()
    return tmp_path / "data"
