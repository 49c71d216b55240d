"""Knowledge resources: environment wiring and the definitions they serve."""

import os
from pathlib import Path

import dagster as dg
import pytest

from ark_assets.defs.knowledge import resources as kb_resources
from ark_assets.defs.knowledge.resources import (
    DEFAULT_EMBEDDER,
    EmbedderResource,
    VectorStoreResource,
    build_knowledge_resources,
)
from ark_assets.testing.resources import rooted_resources


def test_rooted_test_resources_use_hashing_under_the_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARK_EMBEDDER", "openai")  # hidden: the rooted set ignores the env
    monkeypatch.setenv("ARK_CHROMA_DIR", "/elsewhere")
    built = rooted_resources(tmp_path)
    assert built["embedder"].backend == "hashing"
    assert built["vector_store"].path == str(tmp_path / "chroma")
    assert built["vector_store"].location_metadata()["path"].value == str(tmp_path / "chroma")
    assert built["kb_inbox"].path == str(tmp_path / "kb_inbox")
    assert os.environ["ARK_EMBEDDER"] == "openai"  # the environment is restored


def test_environment_selects_the_embedder_and_a_chroma_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARK_EMBEDDER", "openai")
    monkeypatch.setenv("ARK_EMBEDDER_MODEL", "bge-m3")
    monkeypatch.setenv("ARK_EMBEDDER_API_KEY", "not-a-real-key")
    monkeypatch.setenv("ARK_CHROMA_HOST", "chroma.internal")
    monkeypatch.setenv("ARK_CHROMA_PORT", "8123")
    with dg.build_resources(build_knowledge_resources()) as built:
        assert (built.embedder.backend, built.embedder.model) == ("openai", "bge-m3")
        assert built.embedder.api_key == "not-a-real-key"
        assert built.vector_store.location == "http://chroma.internal:8123"
        assert "url" in built.vector_store.location_metadata()
    raw = build_knowledge_resources()
    assert isinstance(raw["embedder"].api_key, dg.EnvVar)  # shown as env-sourced, never inlined


def test_environment_defaults_to_the_demo_embedder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARK_DATA_DIR", str(tmp_path))
    for name in ("ARK_EMBEDDER", "ARK_CHROMA_HOST", "ARK_CHROMA_DIR"):
        monkeypatch.delenv(name, raising=False)
    built = build_knowledge_resources()
    assert built["embedder"].backend == DEFAULT_EMBEDDER == "multilingual_e5"
    assert built["vector_store"].path == str(tmp_path / "chroma")
    assert sorted(kb_resources.resources().resources) == ["embedder", "kb_inbox", "vector_store"]


def test_a_store_without_path_or_host_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="ARK_CHROMA_DIR"):
        VectorStoreResource().index(EmbedderResource())


def test_knowledge_definitions_carry_versions_schemas_and_blocking_checks() -> None:
    from ark_assets.definitions import defs

    loaded = defs()
    specs = {s.key.to_user_string(): s for s in loaded.resolve_all_asset_specs()}
    knowledge = {k for k, s in specs.items() if s.group_name == "knowledge"}
    assert knowledge == {"kb_sources", "kb_quarantined_records", "kb_index", "kb_retrieval_eval"}
    for key in knowledge:
        assert specs[key].code_version and specs[key].description
    for table in ("kb_sources", "kb_quarantined_records", "kb_retrieval_eval"):
        assert "dagster/column_schema" in specs[table].metadata
    blocking = {
        spec.key.name: spec.blocking
        for assets_def in loaded.get_repository_def().asset_graph.assets_defs
        for spec in assets_def.check_specs
        if spec.key.asset_key.to_user_string() in knowledge
    }
    assert blocking == {
        "records_accounted": True,
        "kb_sources_phi_free": True,
        "kb_sources_contract": True,
        "kb_quarantine_rules_known": False,
        "kb_index_matches_sources": True,
        "kb_index_contract": True,
        "recall_at_5_floor": False,
    }
    assert loaded.resolve_sensor_def("kb_inbox_sensor").job_name == "kb_sources_job"
