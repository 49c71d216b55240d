"""A dbt test over a model that is neither built nor in the build is left out of that build."""

from ark_assets.lib.warehouse.project import unbuilt_tests


def _model(name: str) -> dict:
    return {"resource_type": "model", "name": name, "schema": "staging", "alias": name}


def _test(name: str, *parents: str) -> dict:
    return {"resource_type": "test", "name": name, "depends_on": {"nodes": list(parents)}}


MANIFEST = {
    "nodes": {
        "model.w.stg_hits": _model("stg_hits"),
        "model.w.stg_sources": _model("stg_sources"),
        "model.w.stg_records": _model("stg_records"),
        "test.w.hits_doc_in_sources": _test(
            "hits_doc_in_sources", "model.w.stg_hits", "model.w.stg_sources"
        ),
        "test.w.sources_unique": _test("sources_unique", "model.w.stg_sources"),
        "test.w.records_from_source": _test(
            "records_from_source", "model.w.stg_records", "source.w.ark.sft_records"
        ),
    }
}


def test_a_relationship_into_a_model_of_a_later_step_waits_for_it() -> None:
    """The demo's first warehouse run selected stg_kb_sources; dbt's eager selection added the
    relationship test from stg_kb_hits, not built yet, and the run failed on the missing view."""
    assert unbuilt_tests(MANIFEST, {"stg_sources"}, set()) == ["hits_doc_in_sources"]


def test_it_runs_once_the_other_model_exists_or_is_built_with_it() -> None:
    built = {("STAGING", "STG_HITS")}  # information_schema may report another case
    assert unbuilt_tests(MANIFEST, {"stg_sources"}, built) == []
    assert unbuilt_tests(MANIFEST, {"stg_sources", "stg_hits"}, set()) == []


def test_sources_are_not_its_business() -> None:
    assert "records_from_source" not in unbuilt_tests(MANIFEST, {"stg_records"}, set())
