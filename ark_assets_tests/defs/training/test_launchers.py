"""The definitions load with each training launcher configuration, and the launcher they build
starts the trainer where that configuration says: a local child process or a GPU pod."""

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

TRAINER = "ark_assets.lib.training.sft_train"
SETTINGS = {"base_model_path": "/data/models/base/tiny", "max_steps": 2}
K8S = {
    "ARK_TRAINING_LAUNCHER": "k8s",
    "ARK_TRAINING_IMAGE": "registry.example/ark-assets:1",
    "ARK_TRAINING_NAMESPACE": "training",
    "ARK_TRAINING_GPUS": "2",
}
# The settings go through Pipes (the ``settings`` extra), never as a path on the command line.
LOCAL_RUN = {"command": [sys.executable, "-m", TRAINER], "extras": {"settings": SETTINGS}}
POD_RUN = {
    "namespace": "training",
    "extras": {"settings": SETTINGS},
    "base_pod_spec": {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {"fsGroup": 1000},
        "nodeSelector": {},
        "tolerations": [],
        "volumes": [{"name": "ark-data", "persistentVolumeClaim": {"claimName": "ark-data"}}],
        "containers": [
            {
                "name": "trainer",
                "image": "registry.example/ark-assets:1",
                "command": ["python", "-m", TRAINER],
                "resources": {"limits": {"nvidia.com/gpu": "2"}},
                "volumeMounts": [{"name": "ark-data", "mountPath": "/data"}],
                "env": [
                    {"name": "ARK_DATA_DIR", "value": "/data"},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                ],
            }
        ],
    },
}


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps(SETTINGS))
    return path


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The Pipes clients' ``run`` calls (client, arguments), recorded instead of started."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def client(name: str) -> type:
        class Recording:
            def run(self, **kwargs: Any) -> None:
                calls.append((name, kwargs))

        return Recording

    monkeypatch.setattr(dg, "PipesSubprocessClient", client("subprocess"))
    k8s = types.ModuleType("dagster_k8s")  # the optional extra, not installed for tests
    k8s.PipesK8sClient = client("k8s")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dagster_k8s", k8s)
    for name in [name for name in os.environ if name.startswith("ARK_TRAINING_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ARK_DATA_DIR", "/data")  # where the pod mounts the data volume
    return calls


def _launcher(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from ark_assets.definitions import defs

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    return loaded.resources["training_launcher"].process_config_and_initialize()


@pytest.mark.parametrize(
    ("env", "client", "arguments"),
    [
        ({}, "subprocess", LOCAL_RUN),
        ({"ARK_TRAINING_LAUNCHER": "subprocess"}, "subprocess", LOCAL_RUN),
        (K8S, "k8s", POD_RUN),
    ],
)
def test_definitions_load_with_launcher_and_start_the_trainer_there(
    env: dict[str, str],
    client: str,
    arguments: dict[str, Any],
    launched: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    settings_file: Path,
) -> None:
    context = object()
    _launcher(env, monkeypatch).run(context, TRAINER, settings_file)
    assert launched == [(client, {"context": context, **arguments})]


def test_an_unknown_launcher_names_the_variable_to_fix(
    launched: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    settings_file: Path,
) -> None:
    launcher = _launcher({"ARK_TRAINING_LAUNCHER": "slurm"}, monkeypatch)
    with pytest.raises(ValueError, match="'slurm'; set ARK_TRAINING_LAUNCHER"):
        launcher.run(object(), TRAINER, settings_file)
    assert launched == []
