"""Shared fixtures: bundled samples, malformed fixtures, and a Dagster setup on a temp data dir."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ark_assets.defs.ingest.sensors import dialogue_inbox_sensor
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.runs import runnable
from ark_assets.lib.ingest.inbox import copy_into
from ark_assets.testing.resources import rooted_resources

PACKAGE = Path(__file__).resolve().parents[1] / "ark_assets"
SAMPLES = PACKAGE / "samples"
BAD_INPUTS = Path(__file__).resolve().parent / "fixtures" / "bad_inputs"

INGEST_SELECTION = dg.AssetSelection.assets(
    "raw_dialogues", "quarantined_records", "tagged_dialogues", "tag_collisions"
)


@dataclass
class Platform:
    """The definitions, a test instance and resources rooted in a temp data directory."""

    root: Path
    instance: dg.DagsterInstance
    resources: dict[str, Any]
    defs: dg.Definitions

    @property
    def inbox(self) -> Path:
        return Path(self.resources["inbox"].path)

    def drop(self, *files: Path) -> None:
        copy_into(self.inbox, list(files))

    def sense(self) -> list[str]:
        """Evaluate the inbox sensor; register and return the new batch keys."""
        context = dg.build_sensor_context(
            instance=self.instance, resources={"inbox": self.resources["inbox"]}
        )
        result = dialogue_inbox_sensor(context)
        if not isinstance(result, dg.SensorResult):
            return []
        keys = list(result.dynamic_partitions_requests[0].partition_keys or [])
        self.instance.add_dynamic_partitions(dialogue_batches.name, keys)
        return keys

    def materialize(
        self, selection: dg.AssetSelection, partition_key: str | None = None, **kwargs: Any
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            runnable(self.defs),
            selection=selection,
            partition_key=partition_key,
            instance=self.instance,
            resources=self.resources,
            **kwargs,
        )

    def ingest(self, *files: Path) -> list[str]:
        """Drop files, sense them and materialize each new batch's ingest assets."""
        self.drop(*files)
        keys = self.sense()
        for key in keys:
            result = self.materialize(INGEST_SELECTION, key)
            assert result.success, key
        return keys


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    from ark_assets.definitions import defs

    with dg.instance_for_test() as instance:
        yield Platform(tmp_path, instance, rooted_resources(tmp_path), defs())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 with the exact Qwen2.5 tokenizer, built once per session."""
    from ark_assets.testing.tiny import save_random_qwen2

    return save_random_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def qwen_tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="session")
def kb() -> Any:
    """The bundled sample knowledge base behind an in-memory retriever (no vector store)."""
    import json

    from ark_assets.testing.retriever import MemoryRetriever

    lines = (SAMPLES / "kb_qa_sample.jsonl").read_text().splitlines()
    return MemoryRetriever(json.loads(line) for line in lines)
