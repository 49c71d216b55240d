"""File artifacts and adapters record what built them in their materialization metadata."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ark_assets.defs.metadata import file_metadata, training_metadata
from ark_assets.lib.compliance.provenance import BUILT_WITH, build_environment


def test_file_artifacts_and_adapters_record_their_build_environment(tmp_path: Path) -> None:
    artifact = tmp_path / "tagged.pkl"
    artifact.write_bytes(b"fake")
    for metadata in (file_metadata(artifact), training_metadata(dg.MaterializeResult())):
        recorded = metadata[BUILT_WITH]
        assert isinstance(recorded, dg.JsonMetadataValue)
        assert recorded.value == build_environment()
