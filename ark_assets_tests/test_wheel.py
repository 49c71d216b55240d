"""The built wheel works on its own: every package file ships, and it runs without the checkout.

The wheel is built from a copy of the checkout (setuptools writes ``build/`` and ``*.egg-info``
beside its sources) and installed into a throwaway venv whose only other path is this venv's
site-packages, added by a ``.pth`` path line. Path lines are not scanned for ``.pth`` files of
their own, so the editable install's finder, which maps ``ark_assets`` to the checkout, stays
off, and ``-P`` keeps the working directory off ``sys.path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ark_assets_tests.lib.training.paths import ask_path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ark_assets"
DBT_PROJECT = REPO / "dbt_like_sql"  # ships beside the package (lib/warehouse/project.py)
_NOT_SHIPPED = ("__pycache__", "target", "logs")  # caches, dbt's parse and run output

_RENDER = """
import json, sys
import ark_assets
from ark_assets.lib.synthesis.models import ArkPath
from ark_assets.lib.training.render import chat_template, examples_for, messages_for
from ark_assets.lib.training.tokenizer import build_qwen25_tokenizer

path = ArkPath.model_validate_json(sys.stdin.read())
tokenizer = build_qwen25_tokenizer(chat_template())  # the bundled templates/qwen2_5_tools.jinja
example = examples_for(messages_for(path), tokenizer)[-1]
print(json.dumps({
    "package": ark_assets.__file__,
    "action": example.action,
    "text": tokenizer.decode(example.input_ids),
}))
"""
_DEFINITIONS = """
import json
import ark_assets
from ark_assets.definitions import defs

keys = sorted(key.to_user_string() for key in defs().resolve_all_asset_keys())
print(json.dumps({"package": ark_assets.__file__, "assets": keys}))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    site: Path
    root: Path

    def run(self, code: str, stdin: str = "") -> dict[str, Any]:
        """Run ``code`` in the wheel's venv from an empty directory: the JSON it prints last."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env |= {"ARK_DATA_DIR": str(self.root / "data"), "HF_HUB_OFFLINE": "1"}
        cwd = self.root / "cwd"
        cwd.mkdir(exist_ok=True)
        done = subprocess.run(
            [str(self.python), "-P", "-c", code],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(PACKAGE, source / "ark_assets", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        DBT_PROJECT, source / DBT_PROJECT.name, ignore=shutil.ignore_patterns(*_NOT_SHIPPED)
    )
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    dist = root / "dist"
    # No build isolation: offline, and setuptools (a dev dependency) is already here.
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source], check=True
    )
    (wheel,) = dist.glob("ark_assets-*.whl")

    target = root / "venv"
    venv.create(target, with_pip=False)
    paths = sysconfig.get_paths(vars={"base": str(target), "platbase": str(target)})
    site = Path(paths["purelib"])
    here = sysconfig.get_paths()
    (site / "dependencies.pth").write_text(
        "\n".join(dict.fromkeys([here["purelib"], here["platlib"]])) + "\n"
    )
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-compile", "--target", site, wheel], check=True
    )
    return Installed(wheel, Path(paths["scripts"]) / "python", site, root)


def test_wheel_ships_every_package_file(installed: Installed) -> None:
    source = {
        path.relative_to(REPO).as_posix()
        for top in (PACKAGE, DBT_PROJECT)
        for path in top.rglob("*")
        if path.is_file() and not set(path.relative_to(top).parts) & set(_NOT_SHIPPED)
    }
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = {
            name for name in wheel.namelist() if name.startswith(("ark_assets/", "dbt_like_sql/"))
        }
    missing = sorted(source - shipped)
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data]): {missing}"


def test_installed_wheel_renders_an_sft_example(installed: Installed) -> None:
    result = installed.run(_RENDER, stdin=ask_path().model_dump_json())
    assert Path(result["package"]).is_relative_to(installed.site), result["package"]
    assert result["action"] == "AskAction"
    text = result["text"]
    assert text.startswith("<|im_start|>system\n")
    assert "<|im_start|>assistant\n<tool_call>\n" in text
    assert text.rstrip().endswith("</tool_call><|im_end|>")


def test_installed_wheel_loads_the_definitions(installed: Installed) -> None:
    from ark_assets.definitions import defs

    result = installed.run(_DEFINITIONS)
    assert Path(result["package"]).is_relative_to(installed.site), result["package"]
    checkout = sorted(key.to_user_string() for key in defs().resolve_all_asset_keys())
    assert result["assets"] == checkout
