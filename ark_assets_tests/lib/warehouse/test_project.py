"""The dbt project's manifest (parsed once per change) and what a build leaves out."""

from __future__ import annotations

import shutil
from pathlib import Path

from ark_assets.lib.warehouse.project import (
    DEFAULT_PROJECT_DIR,
    exclusions,
    needs_database,
    prepare_manifest,
    read_manifest,
    source_digest,
)


def test_the_manifest_is_parsed_when_the_project_changes_and_only_then(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    for name in ("dbt_project.yml", "profiles.yml"):  # the real configuration, one tiny model
        shutil.copy(DEFAULT_PROJECT_DIR / name, root / name)
    (root / "models" / "one.sql").write_text("select 1 as x")
    first = prepare_manifest(root)
    assert first.parsed and "model.ark_warehouse.one" in read_manifest(first.path)["nodes"]
    assert not prepare_manifest(root).parsed
    assert source_digest(root) == first.digest != source_digest(DEFAULT_PROJECT_DIR)
    (root / "models" / "two.sql").write_text("select * from {{ ref('one') }}")
    again = prepare_manifest(root)
    assert again.parsed and again.digest != first.digest
    assert "model.ark_warehouse.two" in read_manifest(again.path)["nodes"]


def test_models_over_unwritten_tables_are_excluded_but_deletion_requests_never_is() -> None:
    manifest = {
        "sources": {
            "source.p.ark.raw_dialogues": {"source_name": "ark", "name": "raw_dialogues"},
            "source.p.ark.eval_items": {"source_name": "ark", "name": "eval_items"},
            "source.p.ark.deletion_requests": {
                "source_name": "ark",
                "name": "deletion_requests",
                "config": {"meta": {"ark": {"empty_when_missing": True}}},
            },
        }
    }
    assert exclusions(manifest, {"raw_dialogues"}) == ["source:ark.eval_items+"]
    assert exclusions(manifest, {"raw_dialogues", "eval_items"}) == []


def test_only_commands_that_open_the_warehouse_take_its_lock() -> None:
    assert needs_database(["build", "-s", "dialogue_stats"])
    assert needs_database(["docs", "generate"])
    assert not needs_database(["docs", "serve", "--port", "8580"])
    assert not needs_database(["parse"]) and not needs_database(["ls"])
