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
from ark_assets.defs.resources import build_resources
from ark_assets.lib.inbox import copy_into

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
        assets = list(self.defs.assets or [])
        checks = list(self.defs.asset_checks or [])
        return dg.materialize(
            [*assets, *checks],
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


def build_all_resources(root: Path) -> dict[str, Any]:
    """Every layer's resources, rooted in ``root`` and ignoring the environment."""
    from ark_assets.defs.knowledge.resources import build_knowledge_resources
    from ark_assets.defs.synthesis.resources import build_teacher
    from ark_assets.defs.training.resources import build_training_resources

    return {
        **build_resources(root),
        **build_knowledge_resources(root),
        "teacher": build_teacher(root),
        **build_training_resources(root),
    }


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    from ark_assets.definitions import defs

    with dg.instance_for_test() as instance:
        yield Platform(tmp_path, instance, build_all_resources(tmp_path), defs())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 with the exact Qwen2.5 tokenizer, built once per session."""
    from ark_assets.lib.training.tiny import save_random_qwen2

    return save_random_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def qwen_tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)
