"""A Dagster setup for synthesis: ingested sample dialogues, a hashing-embedder KB, a teacher."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
import pytest

from ark_assets_tests.conftest import INGEST_SELECTION, SAMPLES, Platform

ARK_ASSETS = ("ark_paths", "ark_failures", "ark_entities", "ark_entity_failures")
SYNTHESIS = dg.AssetSelection.assets(*ARK_ASSETS)
KB = dg.AssetSelection.assets("kb_sources", "kb_quarantined_records", "kb_index")
DEIDENTIFY = dg.AssetSelection.assets("deidentified_dialogues", "phi_findings")
# What a synthesis run needs upstream; other assets need resources these tests do not build.
_UPSTREAM_GROUPS = {"ingest", "knowledge", "compliance"}


def layer_definitions(defs: dg.Definitions) -> list[Any]:
    def needed(asset: dg.AssetsDefinition) -> bool:
        groups = set(asset.group_names_by_key.values())
        names = {key.to_user_string() for key in asset.keys}
        return groups <= _UPSTREAM_GROUPS or names <= set(ARK_ASSETS)

    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and needed(a)]
    keys = {key for a in assets for key in a.keys}
    checks = [
        c for c in defs.asset_checks or [] if {spec.asset_key for spec in c.check_specs} <= keys
    ]
    return [*assets, *checks]


@dataclass
class Synthesis:
    platform: Platform
    batch: str
    dialogues: int

    def run(self, **resources: Any) -> dg.ExecuteInProcessResult:
        return materialize(self.platform, SYNTHESIS, self.batch, **resources)

    def table(self, name: str) -> pl.DataFrame:
        with duckdb.connect(str(self.platform.root / "warehouse.duckdb"), read_only=True) as conn:
            return conn.execute(f"select * from ark.{name} order by all").pl()


def materialize(
    platform: Platform, selection: dg.AssetSelection, partition: str | None = None, **resources: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        layer_definitions(platform.defs),
        selection=selection,
        partition_key=partition,
        instance=platform.instance,
        resources={**platform.resources, **resources},
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def sample_file(root: Path, language: str, dialogues: int) -> Path:
    lines = (SAMPLES / f"dialogues_{language}_sample.jsonl").read_text().splitlines()
    path = root / f"{language}_{dialogues}.jsonl"
    path.write_text("\n".join(lines[:dialogues]) + "\n")
    return path


def build(platform: Platform, language: str, dialogues: int, kb_pairs: int) -> Synthesis:
    """Ingest ``dialogues`` of a sample, index ``kb_pairs`` QA pairs, the rules teacher."""
    inbox = Path(platform.resources["kb_inbox"].path)
    inbox.mkdir(parents=True, exist_ok=True)
    pairs = (SAMPLES / "kb_qa_sample.jsonl").read_text().splitlines()[:kb_pairs]
    (inbox / "kb.jsonl").write_text("\n".join(pairs) + "\n")
    assert materialize(platform, KB).success
    platform.drop(sample_file(platform.root, language, dialogues))
    (batch,) = platform.sense()
    assert materialize(platform, INGEST_SELECTION | DEIDENTIFY, batch).success
    return Synthesis(platform, batch, dialogues)


@pytest.fixture
def zh(platform: Platform) -> Iterator[Synthesis]:
    yield build(platform, "zh", 300, 2000)


def turns_of(path: Path) -> int:
    return sum(len(json.loads(line)["turns"]) for line in path.read_text().splitlines())
