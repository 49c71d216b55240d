"""A Dagster setup for the knowledge layer on a temp data dir (hashing embedder)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ark_assets.defs.knowledge import assets, checks
from ark_assets.testing.resources import rooted_resources
from ark_assets_tests.conftest import SAMPLES

KNOWLEDGE = dg.AssetSelection.groups("knowledge")
KNOWLEDGE_DEFS = [
    assets.kb_sources,
    assets.kb_index,
    assets.kb_retrieval_eval,
    checks.kb_sources_contract,
    checks.kb_quarantine_rules_known,
    checks.kb_index_matches_sources,
    checks.kb_index_contract,
]


def sample_lines(start: int, stop: int) -> bytes:
    lines = (SAMPLES / "kb_qa_sample.jsonl").read_bytes().splitlines(keepends=True)
    return b"".join(lines[start:stop])


@dataclass
class KnowledgeBase:
    root: Path
    instance: dg.DagsterInstance
    resources: dict[str, Any]

    @property
    def inbox(self) -> Path:
        return Path(self.resources["kb_inbox"].path)

    def drop(self, name: str, data: bytes | str | list[dict[str, Any]]) -> Path:
        if isinstance(data, list):
            data = "\n".join(json.dumps(r, ensure_ascii=False) for r in data) + "\n"
        raw = data.encode() if isinstance(data, str) else data
        self.inbox.mkdir(parents=True, exist_ok=True)
        path = self.inbox / name
        path.write_bytes(raw)
        return path

    def materialize(
        self, selection: dg.AssetSelection = KNOWLEDGE, run_config: dict | None = None
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            KNOWLEDGE_DEFS,
            selection=selection,
            instance=self.instance,
            resources=self.resources,
            run_config=run_config
            or (eval_config(held_out_documents=10) if selection is KNOWLEDGE else None),
            raise_on_error=False,
        )

    def metadata(self, result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
        (event,) = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(asset)
        ]
        return {k: v.value for k, v in event.materialization.metadata.items()}


def eval_config(**fields: Any) -> dict[str, Any]:
    return {"ops": {"kb_retrieval_eval": {"config": fields}}}


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    resources = rooted_resources(tmp_path)
    with dg.instance_for_test() as instance:
        yield KnowledgeBase(tmp_path, instance, resources)
