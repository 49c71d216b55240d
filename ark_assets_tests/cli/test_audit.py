"""`ark audit` on hostile targets and hand-made adapter directories (no training): a clean exit
status for what names nothing, a training card that never makes the audit read outside the
artifact store, and the build environment the card recorded, not the auditor's."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ark_assets.cli import main
from ark_assets.cli.audit import FINDINGS, UNKNOWN_TARGET

RECORDED = {
    "git": {"commit": "deadbeef" * 5, "dirty": False},
    "python": "3.11.0",
    "packages": {"ark-assets": "0.0.1", "torch": "2.4.0", "phonenumbers": None},
}


@dataclass
class Home:
    data: Path
    out: Path

    def adapter(self, card: dict[str, Any], lineage: dict[str, Any] | None = None) -> Path:
        """An adapter directory under the artifact store, as a trainer leaves it."""
        folder = self.data / "artifacts" / "adapters" / "sft" / "0123456789abcdef"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "training_card.json").write_text(json.dumps(card))
        if lineage is not None:
            (folder / "lineage.json").write_text(json.dumps(lineage))
        return folder

    def audit(self, target: str) -> tuple[int | str | None, dict[str, Any] | None, str]:
        """Exit status, the audit written (if any) and its markdown."""
        try:
            main(["audit", target, "--out", str(self.out)])
            status: int | str | None = 0
        except SystemExit as exited:
            status = exited.code
        written = sorted(self.out.glob("*.audit.json"))
        if not written:
            return status, None, ""
        markdown = written[0].with_suffix(".md").read_text()
        return status, json.loads(written[0].read_text()), markdown


@pytest.fixture
def home(cli_data_dir: Path, tmp_path: Path) -> Home:
    return Home(cli_data_dir, tmp_path / "out")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "the target is empty"),
        ("a\0b", "NUL character"),
        ("x" * 100_000, "100,000 characters long"),
        ("d" * 300, "is not an asset key"),  # a path component longer than NAME_MAX
        ("/" + "d" * 300 + "/training_card.json", "is not an asset key"),
    ],
)
def test_targets_that_name_nothing_exit_with_a_message(
    home: Home, target: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, written, _ = home.audit(target)
    assert status == UNKNOWN_TARGET and written is None
    assert message in capsys.readouterr().err


def test_a_card_never_sends_the_audit_outside_the_artifact_store(
    home: Home, tmp_path: Path
) -> None:
    planted = tmp_path / "elsewhere" / "lineage.json"
    planted.parent.mkdir()
    planted.write_text(json.dumps({"conversation_ids": ["planted-key"], "batches": ["b"]}))
    adapter = home.adapter({"settings": {"lineage_path": str(planted)}})
    status, audit, _ = home.audit(str(adapter))
    assert status == FINDINGS and audit is not None
    assert "planted-key" not in json.dumps(audit)
    assert audit["artifact"]["lineage_path_refused"] == str(planted)
    assert any("outside the artifact store" in finding for finding in audit["findings"])

    # Inside the store (the run directory's copy) it is read.
    run_copy = home.data / "artifacts" / "training" / "sft" / "0123456789abcdef" / "lineage.json"
    run_copy.parent.mkdir(parents=True)
    run_copy.write_text(json.dumps({"conversation_ids": ["k1"], "batches": ["b1"]}))
    home.adapter({"settings": {"lineage_path": str(run_copy)}})
    _, audit, _ = home.audit(str(adapter))
    assert audit is not None and audit["conversations"]["ids"] == ["k1"]
    assert audit["artifact"]["lineage_path_refused"] is None


@pytest.mark.parametrize("card", ["{not json", "[1, 2]", "[" * 100_000])
def test_an_unreadable_card_is_an_error_not_a_traceback(
    home: Home, card: str, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter = home.adapter({})
    (adapter / "training_card.json").write_text(card)
    status, _, _ = home.audit(str(adapter))
    assert status == UNKNOWN_TARGET and "training_card.json" in capsys.readouterr().err


def test_the_audit_reports_what_the_card_recorded_at_build_time(home: Home) -> None:
    adapter = home.adapter({"settings": {}, "built_with": RECORDED}, lineage={})
    _, audit, markdown = home.audit(str(adapter))
    assert audit is not None
    assert audit["reproduce"]["built_with"] == RECORDED
    assert audit["reproduce"]["built_with_from"] == "training card"
    assert "environment_at_audit" not in audit["reproduce"]
    checkout = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert checkout != RECORDED["git"]["commit"]
    assert not checkout or checkout not in markdown
    (summary,) = [line for line in markdown.splitlines() if line.startswith("- built with:")]
    assert summary == (
        f"- built with: git {RECORDED['git']['commit']}, Python 3.11.0; ark-assets 0.0.1, "
        "torch 2.4.0 (from the training card)"
    )  # phonenumbers: None, not installed then

    home.adapter({"settings": {}}, lineage={})  # an adapter trained before cards recorded it
    _, audit, markdown = home.audit(str(adapter))
    assert audit is not None and audit["reproduce"]["built_with"] is None
    assert "built with: not recorded" in markdown
