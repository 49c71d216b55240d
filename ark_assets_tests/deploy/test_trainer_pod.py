"""The trainer's pod as the Helm values configure it: built by the training launcher from the
code deployment's environment, handed to ``PipesK8sClient`` (recorded, no cluster here), and
checked against the Kubernetes API's models and against what the trainer needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ark_assets.defs.training.assets import SFT_TRAINER
from ark_assets.defs.training.dpo import DPO_TRAINER
from ark_assets.defs.training.resources import IMAGE_UID, TrainingLauncher
from ark_assets.lib.training.runs import SETTINGS_EXTRA, prepare_run
from ark_assets_tests.deploy.conftest import (
    PodLaunches,
    code_deployment,
    deployment_env,
    launcher_for,
)
from ark_assets_tests.deploy.kubernetes_api import api_errors, keys_named

NO_EXECUTE = {"effect": "NoExecute"}
SETTINGS = {"base_model_path": "/data/models/base/smollm2-135m-instruct", "max_steps": 2}


def _launched(
    module: str, settings: Path, env: dict[str, str], launches: PodLaunches, monkeypatch: Any
) -> dict[str, Any]:
    launcher_for(env, monkeypatch).run(object(), module, settings)
    (launch,) = launches
    return launch


@pytest.mark.parametrize("module", [SFT_TRAINER, DPO_TRAINER])
def test_the_values_put_the_trainer_on_a_gpu_node_with_the_data_volume(
    module: str, pod_launches: PodLaunches, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    env, deployment = deployment_env(), code_deployment()
    launch = _launched(module, settings, env, pod_launches, monkeypatch)
    spec = launch["base_pod_spec"]
    assert api_errors(spec, "V1PodSpec") == []
    (container,) = spec["containers"]

    image = deployment["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    # Settings through Pipes: the command names the module only, no file to read.
    assert container["command"] == ["python", "-m", module]
    assert launch["extras"] == {SETTINGS_EXTRA: SETTINGS}
    assert launch["namespace"] == env["ARK_TRAINING_NAMESPACE"]

    assert container["resources"]["limits"] == {"nvidia.com/gpu": env["ARK_TRAINING_GPUS"]}
    assert spec["nodeSelector"] == {"ark/pool": "training"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]

    # The same claim the code server and the run pods mount, at the same data directory.
    (volume,) = spec["volumes"]
    (mount,) = container["volumeMounts"]
    (shared_volume,) = deployment["volumes"]
    (shared_mount,) = deployment["volumeMounts"]
    assert volume["persistentVolumeClaim"] == shared_volume["persistentVolumeClaim"]
    assert mount == {"name": volume["name"], "mountPath": shared_mount["mountPath"]}
    assert mount["mountPath"] == env["ARK_DATA_DIR"]
    assert keys_named(spec, "hostPath") == []
    assert {"name": "ARK_DATA_DIR", "value": env["ARK_DATA_DIR"]} in container["env"]
    assert spec["securityContext"] == {"fsGroup": IMAGE_UID}
    assert spec["restartPolicy"] == "Never"


def test_every_path_a_run_hands_the_trainer_lies_on_the_mounted_volume(
    pod_launches: PodLaunches, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What ``prepare_run`` writes for ``sft_adapter``, sent through Pipes: the base model,
    the examples, the checkpoints, the adapter and the lineage all under the data directory
    the pod mounts, so the trainer reads and writes the volume, not the orchestrator's disk."""
    data = tmp_path / "data"
    env = {**deployment_env(), "ARK_DATA_DIR": str(data)}
    examples = pl.DataFrame(
        {
            "input_ids": [[1, 2, 3]],
            "prompt_tokens": [2],
            "conversation_id": ["c1"],
            "batch": ["b1"],
        }
    )
    settings_path = prepare_run(
        "sft", examples, {"max_steps": 2}, data / "models" / "base" / "tiny", data / "artifacts",
        provenance={"base_model": "tiny"},
    )  # fmt: skip
    launch = _launched(SFT_TRAINER, settings_path, env, pod_launches, monkeypatch)
    settings = launch["extras"][SETTINGS_EXTRA]
    assert settings == json.loads(settings_path.read_text())
    paths = {key: Path(value) for key, value in settings.items() if key.endswith(("_path", "_dir"))}
    assert set(paths) >= {"base_model_path", "records_path", "output_dir", "checkpoint_dir"}
    (mount,) = launch["base_pod_spec"]["containers"][0]["volumeMounts"]
    assert all(path.is_relative_to(mount["mountPath"]) for path in paths.values()), paths


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ARK_TRAINING_IMAGE": ""}, "set ARK_TRAINING_IMAGE"),
        ({"ARK_TRAINING_NODE_SELECTOR": "training"}, "ARK_TRAINING_NODE_SELECTOR"),
        ({"ARK_TRAINING_TOLERATIONS": "nvidia.com/gpu:Never"}, "ARK_TRAINING_TOLERATIONS"),
    ],
)
def test_a_pod_that_could_not_work_is_refused_before_launch_naming_the_variable(
    env: dict[str, str],
    message: str,
    pod_launches: PodLaunches,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    launcher = launcher_for({**deployment_env(), **env}, monkeypatch)
    with pytest.raises(ValueError, match=message):
        launcher.run(object(), SFT_TRAINER, settings)
    assert pod_launches == []


def test_a_launcher_built_without_a_data_directory_mounts_nothing_anywhere() -> None:
    launcher = TrainingLauncher(kind="k8s", image="registry.example.com/ark-assets:0.1.0")
    with pytest.raises(ValueError, match="set ARK_DATA_DIR to the absolute path"):
        launcher.pod_spec(SFT_TRAINER)


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ("nvidia.com/gpu", [{"key": "nvidia.com/gpu", "operator": "Exists"}]),
        (
            "ark/pool=training:NoExecute, nvidia.com/gpu:NoSchedule",
            [
                {"key": "ark/pool", "operator": "Equal", "value": "training"} | NO_EXECUTE,
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            ],
        ),
        ("", []),
    ],
)
def test_tolerations_are_written_like_kubectl_taints(
    tolerations: str,
    expected: list[dict[str, str]],
    pod_launches: PodLaunches,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**deployment_env(), "ARK_TRAINING_TOLERATIONS": tolerations}
    spec = launcher_for(env, monkeypatch).pod_spec(SFT_TRAINER)
    assert spec["tolerations"] == expected
    assert api_errors(spec, "V1PodSpec") == []
