"""The CPU SFT bench's ladder: MedArk's recipe at the top, ours at the bottom, one change a rung."""

from ark_assets.bench.sft import (
    LADDER,
    MEDARK,
    OURS,
    OURS_AT_MEDARK_TARGETS,
    ladder_env,
    ladder_settings,
)
from ark_assets.lib.training.allocator import ALLOCATOR_ENV, wanted_allocator
from ark_assets.lib.training.sft_train import SftSettings

FIELDS = {"base_model_path": "m", "records_path": "r", "output_dir": "o", "checkpoint_dir": "c"}


def _settings(overrides: dict) -> SftSettings:
    return SftSettings.model_validate({**FIELDS, **overrides})


def test_the_top_rung_is_medarks_recipe() -> None:
    medark = _settings(ladder_settings()[MEDARK])
    assert (medark.recipe, medark.batching, medark.batch_size) == ("medark", "pad_to_max", 1)
    assert medark.gradient_checkpointing and medark.max_length == 2048
    assert medark.lora.target_modules == ["q_proj", "v_proj"]
    assert (medark.lora.r, medark.lora.alpha, medark.lora.dropout, medark.lora.use_rslora) == (
        8, 16, 0.1, True
    )  # fmt: skip
    assert not medark.lean_activations
    assert ladder_env()[MEDARK] == {ALLOCATOR_ENV: "system"}


def test_the_bottom_rungs_are_our_defaults_at_batch_one_and_at_medarks_targets() -> None:
    default = SftSettings.model_validate(FIELDS)
    ours = _settings(ladder_settings()[OURS])
    assert ours.model_dump(exclude={"batch_size"}) == default.model_dump(exclude={"batch_size"})
    assert ours.batch_size == 1
    at_targets = _settings(ladder_settings()[OURS_AT_MEDARK_TARGETS])
    assert at_targets.model_dump(exclude={"lora"}) == ours.model_dump(exclude={"lora"})
    assert at_targets.lora.target_modules == ["q_proj", "v_proj"]
    assert ours.lean_activations
    for env in (ladder_env()[OURS], ladder_env()[OURS_AT_MEDARK_TARGETS]):
        assert env[ALLOCATOR_ENV] == wanted_allocator()  # the trainer's default


def test_the_default_allocator_is_tcmalloc(monkeypatch) -> None:
    monkeypatch.delenv(ALLOCATOR_ENV, raising=False)
    assert wanted_allocator() == "tcmalloc"


def test_each_rung_changes_one_setting_or_the_environment_of_the_rung_above() -> None:
    settings = [_settings(s).model_dump() for s in ladder_settings()]
    envs = ladder_env()
    rungs = zip(settings, settings[1:], envs, envs[1:], LADDER[1:], strict=False)
    for above, below, env_above, env_below, rung in rungs:
        changed = {name for name in above if above[name] != below[name]}
        changed |= {name for name in env_above if env_above[name] != env_below.get(name)}
        assert changed == set(rung.change) | set(rung.env), rung.name
        assert len(changed) == 1, rung.name
