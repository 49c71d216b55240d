"""One small warehouse built with the platform's table shapes, and one dbt build of it through
Dagster, shared by the warehouse tests (dbt starts slowly: every test reads this build)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
import pytest

from ark_assets.testing.resources import rooted_resources
from ark_assets_tests.conftest import Platform
from ark_assets_tests.defs.warehouse.tables import build

WAREHOUSE = dg.AssetSelection.groups("warehouse")


@dataclass
class Built:
    platform: Platform
    batches: list[str]
    result: dg.ExecuteInProcessResult

    @property
    def database(self) -> Path:
        return self.platform.root / "warehouse.duckdb"

    def query(self, sql: str) -> pl.DataFrame:
        with duckdb.connect(str(self.database), read_only=True) as conn:
            return conn.execute(sql).pl()

    def logs(self) -> list[str]:
        """The run's log messages (warnings of the dbt step among them)."""
        entries = self.platform.instance.all_logs(self.result.run_id)
        return [entry.user_message for entry in entries]

    def copy(self, root: Path) -> Platform:
        """A platform over a copy of this warehouse, its landing area and artifacts."""
        for name in ("warehouse.duckdb", "landing", "artifacts"):
            source = self.platform.root / name
            copy: Any = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, root / name)
        return Platform(root, self.platform.instance, rooted_resources(root), self.platform.defs)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    from ark_assets.definitions import defs

    root = tmp_path_factory.mktemp("warehouse")
    with dg.instance_for_test() as instance:
        platform = Platform(root, instance, rooted_resources(root), defs())
        batches = build(platform)
        result = platform.materialize(WAREHOUSE, raise_on_error=False)
        yield Built(platform, batches, result)
