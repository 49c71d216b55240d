"""The pure side of the compliance audit: sources manifest, deletion taint, findings, markdown."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ark_assets.lib.compliance import audit_report as report
from ark_assets.lib.compliance.tombstones import (
    CONVERSATION,
    DELETION_REQUESTS,
    SOURCE_FILE,
    Identifiers,
)
from ark_assets.lib.hashing import ids_digest, sha256_bytes
from ark_assets.lib.tables import frame
from ark_assets_tests.conftest import SAMPLES

BUILT = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
KEY = "a" * 64
OTHER_KEY = "b" * 64
FILE_SHA = "f" * 64
SENTINEL = "never-shown"


def _request(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {column.name: None for column in DELETION_REQUESTS}
    row.update(
        request_id="r1",
        kind=CONVERSATION,
        target=KEY,
        requested_by="dpo",
        reason="ticket 42",
        requested_at=BUILT + timedelta(days=1),
    )
    row.update(fields)
    return row


def _requests(*rows: dict[str, Any]) -> Any:
    return frame(rows, DELETION_REQUESTS)


def test_bundled_manifest_names_every_sample_with_its_licence() -> None:
    manifest = report.load_manifest(SAMPLES / "sources.yaml")
    zh = manifest.describe("dialogues_zh_sample.jsonl")
    en = manifest.describe("dialogues_en_sample.jsonl")
    kb = manifest.describe("kb_qa_sample.jsonl")
    assert zh["listed"] and zh["licence"] == "MIT AND Apache-2.0"
    assert {c["tag"] for c in zh["corpora"]} == {"remedi", "cmtmedqa_test", "disc_med_sft_examples"}
    assert en["licence"] == "Apache-2.0 AND CC-BY-4.0" and "CC BY 4.0" in en["attribution"]
    assert kb["listed"] and kb["licence"] == "Apache-2.0" and kb["url"].startswith("https://")


def test_manifest_patterns_are_globs_and_unmatched_files_are_unlisted(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {pattern: 'clinic_a_*.jsonl', source: Clinic A, licence: LicenseRef-DUA-7}\n"
        "  - {pattern: '*.csv', source: Exports, licence: CC0-1.0, url: 'https://x.test'}\n"
    )
    manifest = report.load_manifest(path)
    assert manifest.describe("clinic_a_2026-01.jsonl")["source"] == "Clinic A"
    assert manifest.describe("anything.csv")["url"] == "https://x.test"
    unlisted = manifest.describe("clinic_b.jsonl")
    assert unlisted == {"source": report.UNLISTED, "licence": None, "url": None, "listed": False}
    assert manifest.describe("CLINIC_A_1.jsonl")["listed"] is False  # case-sensitive


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list\n", "top-level 'sources:' list"),
        ("sources:\n  - {pattern: '*.jsonl', source: S}\n", "entry 0 lacks licence"),
        ("sources: [\n", "not valid YAML"),
    ],
)
def test_malformed_manifest_says_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(report.ManifestError, match=message):
        report.load_manifest(path)


def test_a_missing_manifest_says_how_to_configure_one(tmp_path: Path) -> None:
    with pytest.raises(report.ManifestError, match="ARK_SOURCES_MANIFEST"):
        report.load_manifest(tmp_path / "absent.yaml")


def test_request_after_the_build_for_a_held_conversation_taints() -> None:
    holdings = Identifiers(conversation_ids=frozenset({KEY, OTHER_KEY}))
    result = report.taint(BUILT, holdings, _requests(_request(conversation_id=KEY)))
    assert result["tainted"] and result["requests_checked"] == 1
    (request,) = result["requests"]
    assert request["request_id"] == "r1" and request["matched_on"] == ["conversation_id"]
    assert request["after_build"] and request["requested_at"].startswith("2026-01-11")


def test_requests_for_other_data_do_not_taint() -> None:
    holdings = Identifiers(
        conversation_ids=frozenset({KEY}), batches=frozenset({"b1"}), file_sha256s={FILE_SHA}
    )
    requests = _requests(
        _request(conversation_id=OTHER_KEY, dialogue_sha256="d" * 64),
        _request(request_id="r2", kind=SOURCE_FILE, file_sha256="e" * 64, batch="b2"),
    )
    result = report.taint(BUILT, holdings, requests)
    assert not result["tainted"] and result["requests"] == [] and result["requests_checked"] == 2
    assert not report.taint(BUILT, holdings, _requests())["tainted"]


def test_source_file_requests_match_by_file_digest_and_batch() -> None:
    holdings = Identifiers(batches=frozenset({"b1"}), file_sha256s=frozenset({FILE_SHA}))
    request = _request(kind=SOURCE_FILE, target="a.jsonl", file_sha256=FILE_SHA, batch="b1")
    (match,) = report.taint(BUILT, holdings, _requests(request))["requests"]
    assert match["matched_on"] == ["batch", "file_sha256"]


def test_a_request_older_than_the_build_still_taints_what_it_names() -> None:
    """The artifact was built after the request yet still holds the data: an upstream layer did
    not drop it, so the artifact is tainted (rebuild upstream, then it)."""
    holdings = Identifiers(dialogue_sha256s=frozenset({"d" * 64}))
    request = _request(dialogue_sha256="d" * 64, requested_at=BUILT - timedelta(hours=1))
    result = report.taint(BUILT, holdings, _requests(request))
    assert result["tainted"] and result["requests"][0]["after_build"] is False


def test_ids_digest_matches_the_adapters_conversations_sha256() -> None:
    assert ids_digest([OTHER_KEY, KEY]) == sha256_bytes(f"{KEY}\n{OTHER_KEY}".encode())


def test_redact_hides_secret_looking_keys_at_any_depth() -> None:
    teacher = dict(api_key=SENTINEL, model="m", max_tokens=5)
    redacted = report.redact({"resources": {"teacher": {"config": teacher}}, "a": [1]})
    assert redacted["resources"]["teacher"]["config"] == dict(
        api_key="***", model="m", max_tokens=5
    )
    assert redacted["a"] == [1]
    tags = {"dagster/run_key": "b1", "hf_token": SENTINEL}
    assert report.redact(tags) == {"dagster/run_key": "b1", "hf_token": "***"}


def _audit(**overrides: Any) -> dict[str, Any]:
    audit: dict[str, Any] = {
        "schema": report.SCHEMA,
        "target": {"query": "sft_adapter", "resolved_as": "asset key", "asset": "sft_adapter"},
        "generated_at": "2026-01-12T00:00:00+00:00",
        "artifact": {
            "asset": "sft_adapter",
            "materialized": True,
            "materialized_at": "2026-01-10T12:00:00+00:00",
            "path": "/data/artifacts/adapters/sft/abc",
            "matches_disk": True,
            "metadata": {"global_step": 1},
        },
        "upstream": [
            {
                "asset": "sft_records",
                "group": "synthesis",
                "code_version": "2",
                "code_versions_recorded": ["1"],
                "code_changed_since": True,
                "materializations": [
                    {
                        "partition": "b1",
                        "run_id": "0123456789",
                        "storage_id": 7,
                        "materialized_at": "2026-01-10T11:00:00+00:00",
                        "code_version": "1",
                        "data_version": "feed",
                    }
                ],
                "missing_partitions": [],
            }
        ],
        "checks": [
            {
                "asset": "sft_records",
                "check": "sft_split_disjoint",
                "blocking": True,
                "status": "passed",
                "passed": 1,
                "failed": 0,
                "not_evaluated": 0,
            }
        ],
        "sources": {
            "manifest": "sources.yaml",
            "files": [
                {
                    "kind": "dialogue",
                    "name": "a.jsonl",
                    "sha256": FILE_SHA,
                    "batch": "b1",
                    "listed": True,
                    "source": "Clinic A",
                    "licence": "MIT",
                },
                {
                    "kind": "dialogue",
                    "name": "mystery.jsonl",
                    "sha256": "9" * 64,
                    "batch": "b2",
                    "listed": False,
                    "source": report.UNLISTED,
                    "licence": None,
                },
            ],
            "unlisted": ["mystery.jsonl"],
        },
        "conversations": {
            "origin": "lineage.json of the adapter",
            "count": 2,
            "sha256": ids_digest([KEY, OTHER_KEY]),
            "batches": ["b1", "b2"],
            "ids": [KEY, OTHER_KEY],
        },
        "teacher": [{"backend": "rules", "model": "ark-rules-1", "assets": ["ark_paths"]}],
        "knowledge_base": {"snapshots": [{"collection": "kb-x", "embedder": "hashing"}]},
        "base_model": {"model_id": "tiny", "sha256": "c" * 64, "sha256_consistent": True},
        "phi": {"batches": ["b1"], "by_type": {"PHONE": 2}, "total": 2, "replaced_at_build": {}},
        "deletion": report.taint(
            BUILT,
            Identifiers(conversation_ids=frozenset({KEY})),
            _requests(_request(conversation_id=KEY)),
        ),
        "reproduce": {"training": {"settings": {"seed": 7}, "provenance": {"fingerprint": "abc"}}},
    }
    audit.update(overrides)
    audit["findings"] = report.findings(audit)
    return audit


def test_findings_name_taint_unlisted_sources_and_stale_code() -> None:
    found = report.findings(_audit())
    assert any(f.startswith("tainted by deletion request r1") for f in found)
    assert any("unlisted source file mystery.jsonl" in f for f in found)
    assert any(f.startswith("sft_records: code version 2 now, built with 1") for f in found)
    clean = _audit(
        deletion={"tainted": False, "requests": [], "requests_checked": 0},
        sources={"manifest": "m", "files": [], "unlisted": []},
        upstream=[],
    )
    assert clean["findings"] == []


def test_markdown_has_every_section_and_no_conversation_keys() -> None:
    audit = _audit()
    markdown = report.render_markdown(audit)
    for heading in (
        "# Compliance audit: sft_adapter",
        "## Findings",
        "## Artifact",
        "## Upstream assets",
        "## Source files",
        "## Conversations",
        "## Teacher",
        "## Knowledge base",
        "## Base model",
        "## PHI findings",
        "## Checks",
        "## Deletion requests",
        "## Reproduce",
    ):
        assert heading in markdown, heading
    assert "**TAINTED**" in markdown
    assert "2 / 1 ⚠ changed" in markdown
    # Keys appear only where a deletion request names one (its target), never as a list.
    assert audit["conversations"]["sha256"] in markdown and OTHER_KEY not in markdown
    assert "PHONE: 2" in markdown and "seed 7" in markdown


def test_collection_summarises_each_artifact() -> None:
    collection = {
        "generated_at": "2026-01-12T00:00:00+00:00",
        "artifacts": {"sft_adapter": _audit(), "kb_index": _audit(target={
            "query": "kb_index", "resolved_as": "asset key", "asset": "kb_index"})},
    }  # fmt: skip
    markdown = report.render_collection(collection)
    assert markdown.startswith("# Compliance audit\n")
    assert "tainted: sft_adapter, kb_index" in markdown
    assert "## Compliance audit: kb_index" in markdown and "### Findings" in markdown
