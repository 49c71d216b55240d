"""The build environment an artifact records: the checkout's commit (or none), the versions."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ark_assets.lib.compliance.provenance import BUILT_WITH, build_environment, git_state
from ark_assets.lib.training.sft_train import RunSettings, write_card

PACKAGE = Path(__file__).resolve().parents[3] / "ark_assets"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="no git on this machine")


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_environment_names_the_versions_that_shape_an_artifact() -> None:
    built = build_environment()
    assert set(built) == {"git", "python", "packages"}
    for name in ("python-stdnum", "phonenumbers", "dagster", "torch"):
        assert built["packages"][name] == importlib.metadata.version(name)
    json.dumps(built)  # goes into metadata and the card as is


@needs_git
def test_git_state_is_the_checkout_the_package_is_tracked_in(tmp_path: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=PACKAGE, capture_output=True
    )
    if tracked.returncode:
        pytest.skip("ark_assets is not tracked by a git checkout here (an installed wheel)")
    assert git_state(PACKAGE) == {
        "commit": _git(PACKAGE, "rev-parse", "HEAD"),
        "dirty": bool(_git(PACKAGE, "status", "--porcelain", "--untracked-files=no")),
    }
    # A package copied into some other repository without being committed there (a virtual
    # environment inside a checkout) is not that repository's code: no commit.
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "pkg" / "__init__.py").write_text("")
    assert git_state(repo / "pkg") is None
    assert git_state(tmp_path) is None  # no repository at all
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x")
    assert git_state(repo / "pkg") == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "pkg" / "__init__.py").write_text("changed = True\n")
    assert git_state(repo / "pkg") == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": True}


def test_the_training_card_records_the_trainer_process_environment(tmp_path: Path) -> None:
    settings = RunSettings(
        base_model_path="m", output_dir=str(tmp_path / "out"), checkpoint_dir=str(tmp_path / "c")
    )
    card = {"settings": settings.model_dump(), "global_step": 1}
    write_card(tmp_path, card, settings)
    written = json.loads((tmp_path / "training_card.json").read_text())
    assert written[BUILT_WITH] == build_environment()
    assert written["global_step"] == 1 and BUILT_WITH not in card  # the caller's dict untouched
