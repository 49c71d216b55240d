"""`ark audit` end to end: the demo's graph on a slice of the bundled samples, then its audits.

One module-scoped platform (sample slices under their bundled names, a 100-pair KB, the rules
teacher, a tiny random-weight Qwen2 trained one step through Pipes) serves every test: the
audit only reads, and the test that records a deletion request removes it again.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ark_assets.cli import main
from ark_assets.cli.audit import (
    CLEAN,
    FINDINGS,
    NOT_RUN,
    TAINTED,
    UNKNOWN_TARGET,
    audit_command,
)
from ark_assets.defs.compliance.audit import build_audit
from ark_assets.defs.compliance.audit_lineage import AuditError
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.training.resources import BaseModel
from ark_assets.lib.compliance.provenance import BUILT_WITH, build_environment
from ark_assets.lib.compliance.tombstones import CONVERSATION, TABLE, Tombstone, record_requests
from ark_assets.lib.hashing import sha256_file
from ark_assets.lib.warehouse import connect
from ark_assets.testing.resources import rooted_resources
from ark_assets_tests.conftest import SAMPLES, Platform

DIALOGUES_PER_FILE = 4  # the 4th zh dialogue holds a date: the audit's PHI counts are not empty
KB_PAIRS = 100
DIALOGUE_SAMPLES = ("dialogues_zh_sample.jsonl", "dialogues_en_sample.jsonl")
KB_SAMPLE = "kb_qa_sample.jsonl"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ONE_STEP = {**QUIET, "ops": {"sft_adapter": {"config": {"max_steps": 1, "batch_size": 1}}}}


@dataclass
class Demo:
    platform: Platform
    files: dict[str, Path]  # the slices dropped, by name

    def audit(self, target: str) -> dict[str, Any]:
        return build_audit(
            target, self.platform.instance, self.platform.defs, self.platform.resources
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with connect(self.platform.root / "warehouse.duckdb") as conn:
            return conn.execute(sql).fetchall()


def _slice(folder: Path, name: str, lines: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    head = (SAMPLES / name).read_text(encoding="utf-8").splitlines()[:lines]
    path = folder / name
    path.write_text("\n".join(head) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Demo]:
    from ark_assets.definitions import defs

    root = tmp_path_factory.mktemp("audit")
    slices = root / "slices"
    files = {name: _slice(slices, name, DIALOGUES_PER_FILE) for name in DIALOGUE_SAMPLES}
    kb_file = _slice(slices, KB_SAMPLE, KB_PAIRS)
    resources = rooted_resources(root)
    resources["base_model"] = BaseModel(model=str(tiny_model), models_dir=str(root / "models"))
    with dg.instance_for_test() as instance:
        platform = Platform(root, instance, resources, defs())
        kb_inbox = Path(resources["kb_inbox"].path)
        kb_inbox.mkdir(parents=True)
        (kb_inbox / KB_SAMPLE).write_bytes(kb_file.read_bytes())
        unpartitioned = ("base_model", "kb_sources", "kb_quarantined_records", "kb_index")
        built = platform.materialize(dg.AssetSelection.assets(*unpartitioned), run_config=QUIET)
        assert built.success
        platform.drop(*files.values())
        graph = platform.defs.get_repository_def().asset_graph
        batch_keys = graph.materializable_asset_keys
        per_batch = [k for k in batch_keys if graph.get(k).partitions_def == dialogue_batches]
        for batch in platform.sense():
            # the DPO agent needs the SFT adapter trained below; nothing here audits DPO
            dpo = dg.AssetSelection.assets("dpo_rejections").downstream()
            selection = dg.AssetSelection.assets(*per_batch) - dpo
            assert platform.materialize(selection, batch, run_config=QUIET).success, batch
        trained = platform.materialize(
            dg.AssetSelection.assets("tagged_pkl", "sft_adapter"), run_config=ONE_STEP
        )
        assert trained.success
        yield Demo(platform, {**files, KB_SAMPLE: kb_file})


@pytest.fixture
def tombstone(demo: Demo) -> Iterator[dict[str, Any]]:
    """A deletion request for the adapter's first conversation, removed again afterwards."""
    forgotten = demo.audit("sft_adapter")["conversations"]["ids"][0]
    database = demo.platform.root / "warehouse.duckdb"
    with connect(database) as conn:
        (row,) = record_requests(
            conn, "ark", [Tombstone(CONVERSATION, forgotten, conversation_id=forgotten)]
        ).iter_rows(named=True)
    yield row
    with connect(database) as conn:
        conn.execute(f"delete from ark.{TABLE} where request_id = ?", [row["request_id"]])


def _files(audit: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    return {(f["name"], f["sha256"]) for f in audit["sources"]["files"] if f["kind"] == kind}


def test_adapter_audit_names_exactly_the_sample_files_and_keys(demo: Demo) -> None:
    audit = demo.audit("sft_adapter")
    train = demo.query(
        "select distinct batch, conversation_id from ark.sft_records where split = 'train'"
    )
    batches = sorted({batch for batch, _ in train})
    assert len(batches) == len(DIALOGUE_SAMPLES)
    assert _files(audit, "dialogue") == {
        (name, sha256_file(demo.files[name])) for name in DIALOGUE_SAMPLES
    }
    assert _files(audit, "knowledge") == {(KB_SAMPLE, sha256_file(demo.files[KB_SAMPLE]))}
    assert audit["sources"]["unlisted"] == []
    assert {f["licence"] for f in audit["sources"]["files"]} == {
        "MIT AND Apache-2.0",
        "Apache-2.0 AND CC-BY-4.0",
        "Apache-2.0",
    }
    conversations = audit["conversations"]
    assert set(conversations["ids"]) == {cid for _, cid in train}
    assert conversations["count"] == len(train) and conversations["consistent"]
    assert conversations["batches"] == batches

    artifact = audit["artifact"]
    assert artifact["materialized"] and artifact["matches_disk"] and not artifact["superseded"]
    assert audit["deletion"] == {"tainted": False, "requests": [], "requests_checked": 0}
    assert audit["findings"] == []


def test_adapter_audit_carries_lineage_checks_and_what_a_rebuild_needs(demo: Demo) -> None:
    audit = demo.audit("sft_adapter")
    upstream = {entry["asset"]: entry for entry in audit["upstream"]}
    assert {"raw_dialogues", "tagged_dialogues", "ark_paths", "sft_records", "kb_index"} <= set(
        upstream
    )
    records = upstream["sft_records"]
    assert records["code_versions_recorded"] == [records["code_version"]]
    assert (
        sorted(m["partition"] for m in records["materializations"])
        == (audit["conversations"]["batches"])
    )
    assert all(m["data_version"] and m["run_id"] for m in records["materializations"])
    assert {c["status"] for c in audit["checks"]} == {"passed"}
    assert {"sft_split_disjoint", "records_accounted"} <= {c["check"] for c in audit["checks"]}

    assert audit["teacher"][0]["backend"] == "rules"
    (snapshot,) = audit["knowledge_base"]["snapshots"]
    assert snapshot["documents"] == KB_PAIRS and snapshot["data_version"]
    assert audit["knowledge_base"]["queried"][0]["data_version"] == snapshot["data_version"]
    assert audit["base_model"]["sha256_consistent"]
    batches = ", ".join(f"'{batch}'" for batch in audit["conversations"]["batches"])
    replaced = demo.query(
        f"select type, count(*) from ark.phi_findings where batch in ({batches}) group by type"
    )
    assert replaced and audit["phi"]["by_type"] == dict(replaced)
    assert audit["phi"]["total"] == sum(n for _, n in replaced)
    kb_sources = demo.platform.instance.get_latest_materialization_event(dg.AssetKey("kb_sources"))
    assert kb_sources and kb_sources.asset_materialization
    at_build = kb_sources.asset_materialization.metadata["phi_by_type"].value
    assert audit["phi"]["replaced_at_build"]["kb_sources"] == at_build

    reproduce = audit["reproduce"]
    training = reproduce["training"]
    assert training["settings"]["seed"] == 20250626 and training["settings"]["max_steps"] == 1
    assert training["provenance"]["train_data_sha256"]
    adapter_run = reproduce["runs"][audit["artifact"]["run_id"]]
    assert adapter_run["run_config"]["ops"]["sft_adapter"]["config"]["max_steps"] == 1
    declared = {
        spec.key: spec.code_version for spec in demo.platform.defs.resolve_all_asset_specs()
    }
    assert reproduce["code_versions"]["sft_adapter"] == declared[dg.AssetKey("sft_adapter")]
    assert reproduce["inputs"]["base_model"]["sha256"] == audit["base_model"]["sha256"]
    # The trainer process's environment, from the card it wrote; the materialization carries
    # the asset process's too.
    assert reproduce["built_with_from"] == "training card"
    assert reproduce["built_with"] == build_environment()  # the same checkout and venv here
    adapter = demo.platform.instance.get_latest_materialization_event(dg.AssetKey("sft_adapter"))
    assert adapter and adapter.asset_materialization
    assert adapter.asset_materialization.metadata[BUILT_WITH].value == build_environment()
    json.dumps(audit)  # JSON-serialisable as is


def test_adapter_directory_and_files_in_it_resolve_to_the_same_audit(demo: Demo) -> None:
    by_key = demo.audit("sft_adapter")
    adapter_dir = Path(by_key["artifact"]["path"])
    for target in (adapter_dir, adapter_dir / "adapter_config.json"):
        audit = demo.audit(str(target))
        assert audit["target"]["resolved_as"] == "artifact path"
        assert audit["artifact"]["storage_id"] == by_key["artifact"]["storage_id"]
        assert audit["conversations"]["ids"] == by_key["conversations"]["ids"]
        assert audit["sources"]["files"] == by_key["sources"]["files"]


def test_tagged_pkl_audit_lists_its_keys_and_only_dialogue_files(demo: Demo) -> None:
    audit = demo.audit(str(demo.platform.root / "artifacts" / "exports" / "tagged.pkl"))
    assert audit["target"]["asset"] == "tagged_pkl"
    tagged = {cid for (cid,) in demo.query("select conversation_id from ark.tagged_dialogues")}
    assert set(audit["conversations"]["ids"]) == tagged
    assert _files(audit, "knowledge") == set()
    assert {name for name, _ in _files(audit, "dialogue")} == set(DIALOGUE_SAMPLES)


def test_unknown_target_is_an_error_listing_valid_targets(demo: Demo) -> None:
    with pytest.raises(AuditError, match="Valid targets: an asset key"):
        demo.audit("no_such_asset")
    with pytest.raises(AuditError, match="adapter directory"):
        demo.audit(str(demo.platform.root / "slices"))


def test_compliance_audit_asset_writes_json_and_markdown(demo: Demo) -> None:
    result = demo.platform.materialize(dg.AssetSelection.assets("compliance_audit"))
    (event,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["artifacts_audited"] == 3 and meta["tainted"] == 0
    assert meta["unlisted_sources"] == 0
    document = json.loads(Path(meta["path"]).read_text())
    assert set(document["artifacts"]) == {"tagged_pkl", "kb_index", "sft_adapter", "dpo_adapter"}
    # listed, and said to be unbuilt (this platform trained no DPO adapter)
    assert document["artifacts"]["dpo_adapter"]["findings"] == [
        "never materialized: nothing to audit"
    ]
    markdown = Path(meta["report"]).read_text()
    assert markdown.startswith("# Compliance audit") and "## Compliance audit: kb_index" in markdown


def test_deletion_request_taints_what_holds_the_conversation(
    demo: Demo, tombstone: dict[str, Any]
) -> None:
    adapter = demo.audit("sft_adapter")
    assert adapter["deletion"]["tainted"]
    (request,) = adapter["deletion"]["requests"]
    assert request["request_id"] == tombstone["request_id"] and request["after_build"]
    assert request["matched_on"] == ["conversation_id"]
    finding = f"tainted by deletion request {tombstone['request_id']}"
    assert any(f.startswith(finding) for f in adapter["findings"])
    assert demo.audit("tagged_pkl")["deletion"]["tainted"]
    assert not demo.audit("kb_index")["deletion"]["tainted"]


def _ark_audit(
    demo: Demo, target: str, out: Path, monkeypatch: pytest.MonkeyPatch
) -> int | str | None:
    """`ark audit TARGET --out OUT` on the demo's data directory and instance: the exit status."""
    monkeypatch.setenv("ARK_DATA_DIR", str(demo.platform.root))
    monkeypatch.setenv("DAGSTER_HOME", demo.platform.instance.root_directory)
    try:
        audit_command(argparse.Namespace(target=target, out=out))
    except SystemExit as exited:
        return exited.code
    return CLEAN


def test_cli_exits_clean_for_an_adapter_without_findings(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ark_audit(demo, "sft_adapter", tmp_path, monkeypatch) == CLEAN
    verdict = capsys.readouterr().out.splitlines()[0]
    assert verdict == "ark audit sft_adapter: clean (not tainted, no findings)"
    assert json.loads((tmp_path / "sft_adapter.audit.json").read_text())["findings"] == []


def test_cli_exits_tainted_when_a_deletion_request_matches(
    demo: Demo,
    tombstone: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _ark_audit(demo, "sft_adapter", tmp_path, monkeypatch) == TAINTED
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ark audit sft_adapter: TAINTED by 1 deletion request(s), 1 finding(s)"
    assert lines[1].startswith(f"  - tainted by deletion request {tombstone['request_id']}")
    assert _ark_audit(demo, "kb_index", tmp_path, monkeypatch) == CLEAN


def test_cli_help_lists_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for status, meaning in (
        (CLEAN, "clean"),
        (NOT_RUN, "the audit could not run"),
        (UNKNOWN_TARGET, "unknown target"),
        (TAINTED, "tainted"),
        (FINDINGS, "findings"),
    ):
        assert re.search(rf"^  {status}  {meaning}", text, re.MULTILINE), (status, text)
    assert len({CLEAN, NOT_RUN, UNKNOWN_TARGET, TAINTED, FINDINGS}) == 5


def test_cli_writes_the_audit_files_or_explains_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    with pytest.raises(SystemExit) as exited:
        audit_command(argparse.Namespace(target="sft_adapter", out=None))
    assert exited.value.code == NOT_RUN and "no Dagster instance" in capsys.readouterr().err
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exited:
        audit_command(argparse.Namespace(target="nope", out=None))
    message = capsys.readouterr().err
    assert exited.value.code == UNKNOWN_TARGET
    assert "'nope' is not an asset key" in message and "Valid targets" in message
    with pytest.raises(SystemExit) as exited:
        audit_command(argparse.Namespace(target="sft_adapter", out=tmp_path / "out"))
    assert exited.value.code == FINDINGS
    audit = json.loads((tmp_path / "out" / "sft_adapter.audit.json").read_text())
    assert audit["findings"] == ["never materialized: nothing to audit"]
    assert (tmp_path / "out" / "sft_adapter.audit.md").read_text().startswith("# Compliance")
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "ark audit sft_adapter: not tainted, 1 finding(s)",
        "  - never materialized: nothing to audit",
    ]
