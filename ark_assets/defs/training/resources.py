"""Training resources: which student to train, and where the trainer process runs."""

import json
import sys
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ark_assets.defs.resources import data_dir, env_setting
from ark_assets.lib.ingest.inbox import safe_name
from ark_assets.lib.training import SMOLLM2
from ark_assets.lib.training.runs import SETTINGS_EXTRA

DATA_VOLUME = "ark-data"
# The user ark_assets/deploy/Dockerfile runs as: fsGroup gives it the data volume (where the
# volume's storage honours fsGroup).
IMAGE_UID = 1000
EFFECTS = {"", "NoSchedule", "PreferNoSchedule", "NoExecute"}


class BaseModel(dg.ConfigurableResource):
    """The student: ``smollm2-135m-instruct`` (offline default, from PyPI) or any HF path/id,
    e.g. a local Qwen2.5-1.5B-Instruct directory (MedArk's backbones are Qwen2.5 1.5B/3B/7B)."""

    model: str = SMOLLM2
    models_dir: str

    def local_path(self) -> Path:
        return Path(self.models_dir, "base", safe_name(self.model))


class TrainingLauncher(dg.ConfigurableResource):
    """Runs a trainer module from ``lib/training`` through Dagster Pipes. The run's settings
    travel in the Pipes context (the ``settings`` extra), not as a file the trainer must find;
    logs, metrics and the final metadata stream back either way.

    ``subprocess`` (default): a local child process, which isolates CUDA memory and crashes.
    ``k8s``: the same module in a pod of ``image`` (requires the ``k8s`` extra, dagster-k8s)
    with ``gpus`` ``nvidia.com/gpu`` limits, placed on the GPU pool by ``node_selector`` and
    ``tolerations``, and the volume claim ``data_claim`` mounted at ``data_dir``: the settings
    name the base model, the examples, the checkpoints and the adapter by paths under it.
    """

    kind: str = "subprocess"  # subprocess | k8s (a plain str so it can come from an EnvVar)
    image: str = ""
    namespace: str = "default"
    gpus: int = 1
    data_dir: str = Field(default="", description="ARK_DATA_DIR, where the pod mounts the data.")
    data_claim: str = Field(default="ark-data", description="The data volume's claim (RWX).")
    node_selector: str = Field(default="", description="key=value[,key=value…]")
    tolerations: str = Field(default="", description="key[=value][:effect][,…], as kubectl taint")

    def run(
        self, context: dg.AssetExecutionContext, module: str, settings_path: Path
    ) -> dg.PipesClientCompletedInvocation:
        if self.kind not in ("subprocess", "k8s"):
            raise ValueError(
                f"training_launcher.kind is {self.kind!r}; set ARK_TRAINING_LAUNCHER to "
                "'subprocess' or 'k8s'"
            )
        extras = {SETTINGS_EXTRA: json.loads(settings_path.read_text())}
        if self.kind == "subprocess":
            return dg.PipesSubprocessClient().run(
                command=[sys.executable, "-m", module], context=context, extras=extras
            )
        from dagster_k8s import PipesK8sClient  # optional extra: ark-assets[k8s]

        return PipesK8sClient().run(
            context=context,
            extras=extras,
            namespace=self.namespace,
            base_pod_spec=self.pod_spec(module),
        )

    def pod_spec(self, module: str) -> dict[str, Any]:
        """The trainer's pod (camelCase, as ``PipesK8sClient`` takes a ``base_pod_spec``; Pipes
        adds its context and message variables to the container's env): one container of
        ``image`` running ``module``, GPU limits, the GPU pool's node selector and tolerations,
        the data volume at the data directory."""
        if not self.image:
            raise ValueError("training_launcher.image is empty: set ARK_TRAINING_IMAGE")
        if not Path(self.data_dir).is_absolute():
            raise ValueError(
                f"training_launcher.data_dir is {self.data_dir!r}: set ARK_DATA_DIR to the "
                "absolute path where the data volume is mounted"
            )
        return {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,  # the trainer never calls the Kubernetes API
            "securityContext": {"fsGroup": IMAGE_UID},
            "nodeSelector": _labels(self.node_selector),
            "tolerations": _tolerations(self.tolerations),
            "volumes": [
                {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": self.data_claim}}
            ],
            "containers": [
                {
                    "name": "trainer",
                    "image": self.image,
                    "command": ["python", "-m", module],
                    "resources": {"limits": {"nvidia.com/gpu": str(self.gpus)}},
                    "volumeMounts": [{"name": DATA_VOLUME, "mountPath": self.data_dir}],
                    "env": [
                        {"name": "ARK_DATA_DIR", "value": self.data_dir},
                        # Pipes reads its messages from the pod's log: unbuffered, they arrive
                        # while the trainer runs, not when it exits.
                        {"name": "PYTHONUNBUFFERED", "value": "1"},
                    ],
                }
            ],
        }


def _labels(text: str) -> dict[str, str]:
    """``ark/pool=training,kubernetes.io/arch=amd64`` → a node selector."""
    pairs = [item.strip() for item in text.split(",") if item.strip()]
    bad = [pair for pair in pairs if pair.count("=") != 1 or pair.startswith("=")]
    if bad:
        raise ValueError(
            f"ARK_TRAINING_NODE_SELECTOR: {bad} are not key=value pairs (e.g. ark/pool=training)"
        )
    return {key: value for key, _, value in (pair.partition("=") for pair in pairs)}


def _tolerations(text: str) -> list[dict[str, str]]:
    """``nvidia.com/gpu:NoSchedule,ark/pool=training`` → tolerations: a taint key with its
    value (operator Equal) or without (Exists), and its effect (none: every effect)."""
    found = []
    for item in (item.strip() for item in text.split(",")):
        if not item:
            continue
        taint, _, effect = item.partition(":")
        key, equals, value = taint.partition("=")
        if not key or effect not in EFFECTS:
            raise ValueError(
                f"ARK_TRAINING_TOLERATIONS: {item!r} is not key[=value][:effect] with an "
                f"effect in {sorted(e for e in EFFECTS if e)} (e.g. nvidia.com/gpu:NoSchedule)"
            )
        toleration = {"key": key, "operator": "Equal" if equals else "Exists"}
        if equals:
            toleration["value"] = value
        if effect:
            toleration["effect"] = effect
        found.append(toleration)
    return found


def build_training_resources() -> dict[str, Any]:
    """The student and the trainer's launcher for the environment."""
    base = data_dir()
    setting = env_setting
    return {
        "base_model": BaseModel(
            model=setting("ARK_BASE_MODEL", SMOLLM2), models_dir=str(base / "models")
        ),
        "training_launcher": TrainingLauncher(
            kind=setting("ARK_TRAINING_LAUNCHER", "subprocess"),
            image=setting("ARK_TRAINING_IMAGE", ""),
            namespace=setting("ARK_TRAINING_NAMESPACE", "default"),
            gpus=setting("ARK_TRAINING_GPUS", 1),
            data_dir=str(base),
            data_claim=setting("ARK_TRAINING_DATA_CLAIM", "ark-data"),
            node_selector=setting("ARK_TRAINING_NODE_SELECTOR", ""),
            tolerations=setting("ARK_TRAINING_TOLERATIONS", ""),
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_training_resources())


def latest_adapter(instance: dg.DagsterInstance, asset: str = "sft_adapter") -> Path | None:
    """The adapter directory the latest materialization of ``asset`` reported (None: never
    materialized, or a materialization that names no adapter)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    materialization = event.asset_materialization if event else None
    path = materialization.metadata.get("adapter_path") if materialization else None
    return Path(str(path.value)) if path is not None else None
