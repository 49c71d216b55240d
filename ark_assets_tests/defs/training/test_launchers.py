"""The definitions load with each training launcher configuration."""

import dagster as dg
import pytest


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"ARK_TRAINING_LAUNCHER": "subprocess"},
        {
            "ARK_TRAINING_LAUNCHER": "k8s",
            "ARK_TRAINING_IMAGE": "registry.example/ark-assets:1",
            "ARK_TRAINING_NAMESPACE": "training",
            "ARK_TRAINING_GPUS": "2",
        },
    ],
)
def test_definitions_load_with_launcher(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ark_assets.definitions import defs

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    launcher = loaded.resources["training_launcher"]
    with dg.build_init_resource_context() as _:
        resolved = launcher.process_config_and_initialize()
    assert resolved.kind == env.get("ARK_TRAINING_LAUNCHER", "subprocess")
    if resolved.kind == "k8s":
        assert (resolved.image, resolved.namespace, resolved.gpus) == (
            "registry.example/ark-assets:1",
            "training",
            2,
        )
