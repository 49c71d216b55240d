"""The deployment files, parsed, and the training launcher they configure."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "ark_assets" / "deploy"


def helm_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    return values


def code_deployment() -> dict[str, Any]:
    """The one user-code deployment of the values: this package's code server."""
    (deployment,) = helm_values()["dagster-user-deployments"]["deployments"]
    return dict(deployment)


def deployment_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in code_deployment()["env"]}


class PodLaunches(list[dict[str, Any]]):
    """The ``PipesK8sClient.run`` calls of a test, recorded instead of sent to a cluster."""


@pytest.fixture
def pod_launches(monkeypatch: pytest.MonkeyPatch) -> PodLaunches:
    """dagster-k8s (the optional ``k8s`` extra, not installed for the tests) stood in for by a
    ``PipesK8sClient`` that records what it was asked to start."""
    launches = PodLaunches()

    class RecordingPipesK8sClient:
        def run(self, **kwargs: Any) -> None:
            launches.append(kwargs)

    module = types.ModuleType("dagster_k8s")
    module.PipesK8sClient = RecordingPipesK8sClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dagster_k8s", module)
    return launches


def launcher_for(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ``training_launcher`` the definitions build in ``env`` (and no other ``ARK_``
    variable), its settings resolved as a run resolves them."""
    from ark_assets.defs.training.resources import build_training_resources

    for name in [name for name in os.environ if name.startswith("ARK_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    launcher = build_training_resources()["training_launcher"]
    with dg.build_resources({"training_launcher": launcher}) as built:
        return built.training_launcher
