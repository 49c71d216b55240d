"""Training resources: which student to train, and where the trainer process runs."""

import sys
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.defs.resources import data_dir, env_setting
from ark_assets.lib.ingest.inbox import safe_name
from ark_assets.lib.training import SMOLLM2


class BaseModel(dg.ConfigurableResource):
    """The student: ``smollm2-135m-instruct`` (offline default, from PyPI) or any HF path/id,
    e.g. a local Qwen2.5-1.5B-Instruct directory (MedArk's backbones are Qwen2.5 1.5B/3B/7B)."""

    model: str = SMOLLM2
    models_dir: str

    def local_path(self) -> Path:
        return Path(self.models_dir, "base", safe_name(self.model))


class TrainingLauncher(dg.ConfigurableResource):
    """Runs a trainer script from ``lib/training`` through Dagster Pipes.

    ``subprocess`` (default): a local child process, which isolates CUDA memory and crashes.
    ``k8s``: the same script in a pod of ``image`` with ``gpus`` ``nvidia.com/gpu`` limits
    (requires the ``k8s`` extra, dagster-k8s). Logs and metrics stream back either way.
    """

    kind: str = "subprocess"  # subprocess | k8s (a plain str so it can come from an EnvVar)
    image: str = ""
    namespace: str = "default"
    gpus: int = 1

    def run(
        self, context: dg.AssetExecutionContext, module: str, config_path: Path
    ) -> dg.PipesClientCompletedInvocation:
        args = ["-m", module, str(config_path)]
        if self.kind not in ("subprocess", "k8s"):
            raise ValueError(
                f"training_launcher.kind is {self.kind!r}; set ARK_TRAINING_LAUNCHER to "
                "'subprocess' or 'k8s'"
            )
        if self.kind == "subprocess":
            return dg.PipesSubprocessClient().run(command=[sys.executable, *args], context=context)
        from dagster_k8s import PipesK8sClient  # optional extra: ark-assets[k8s]

        limits = {"nvidia.com/gpu": str(self.gpus)}
        return PipesK8sClient().run(
            context=context,
            image=self.image,
            namespace=self.namespace,
            command=["python", *args],
            base_pod_spec={"containers": [{"name": "trainer", "resources": {"limits": limits}}]},
        )


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
