"""The DPO chain through Dagster: held-out paths → chosen and (scripted) SFT-agent rejections →
triples with counted drops and blocking checks → a DPO adapter via Pipes → its audit."""

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ark_assets.defs.agent.resources import PolicyResource
from ark_assets.defs.compliance.audit import build_audit
from ark_assets.defs.training.resources import BaseModel
from ark_assets.lib.agent.loop import CALL_OPENING
from ark_assets.lib.agent.policy import GenerationRequest, Policy
from ark_assets.lib.synthesis.models import EntityRecord
from ark_assets.lib.synthesis.tables import entities_frame, paths_frame
from ark_assets.lib.training.render import split_of
from ark_assets.lib.warehouse import connect
from ark_assets.testing.scripted_policy import ScriptedPolicy, ask, tell
from ark_assets_tests.conftest import Platform
from ark_assets_tests.lib.training.paths import TEACHER, ask_path, tell_path

BATCH = "b1"
HELDOUT_PERCENT = 50
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _keys() -> tuple[list[str], list[str]]:
    """Three held-out and three training MedArk keys at HELDOUT_PERCENT."""
    keys = [f"{i:064x}" for i in range(64)]
    heldout = [k for k in keys if split_of(k, HELDOUT_PERCENT) == "heldout"][:3]
    train = [k for k in keys if split_of(k, HELDOUT_PERCENT) == "train"][:3]
    return heldout, train


def _paths() -> list[Any]:
    heldout, train = _keys()
    paths = []
    for number, key in enumerate(heldout + train):
        base = ask_path() if number % 2 == 0 else tell_path()
        paths.append(base.model_copy(update={
            "conversation_id": key, "medark_key": key,
            "patient_message": f"{base.patient_message} (第{number}位)",
        }))  # fmt: skip
    return paths


def _script(request: GenerationRequest, _: int) -> str:
    """The SFT agent's final action, as the JSON that follows the forced call opening: garbage
    for the first held-out path (a failure row), an ask for the English (telling) paths, a tell
    for the Chinese (asking) ones: every pair is of different types."""
    if "(第0位)" in request.prompt:
        return "I am not sure."
    if "cough" in request.prompt:
        return ask("How long?", form="constrained", symptom=["咳嗽"])
    return tell(form="constrained")


class ScriptedPolicyResource(PolicyResource):
    def open(self, base_model: Path, adapter: Path | None) -> Policy:
        assert adapter is not None and (adapter / "adapter_config.json").exists()
        policy = ScriptedPolicy(_script)
        OPENED.append(policy)
        return policy


OPENED: list[ScriptedPolicy] = []


@pytest.fixture
def dpo_platform(platform: Platform, tiny_model: Path) -> Platform:
    paths = _paths()
    entities = [
        EntityRecord(
            batch=BATCH, conversation_id=p.conversation_id, medark_key=p.medark_key,
            turn_index=p.turn_index, language=p.language, doctor_reply=p.doctor_reply,
            entities=p.response.entities, teacher=TEACHER, prompt_version="entities/zh.v1",
        )
        for p in paths
        if p.is_asking
    ]  # fmt: skip
    with connect(platform.root / "warehouse.duckdb") as conn:
        conn.execute("create schema ark")
        for name, table in (("ark_paths", paths_frame(paths)),
                            ("ark_entities", entities_frame(entities))):  # fmt: skip
            arrow = table.to_arrow()  # noqa: F841  (read by name in the SQL below)
            conn.execute(f"create table ark.{name} as select * from arrow")
    platform.instance.add_dynamic_partitions("dialogue_batches", [BATCH])
    platform.resources["base_model"] = BaseModel(
        model=str(tiny_model), models_dir=str(platform.root / "models")
    )
    platform.resources["policy"] = ScriptedPolicyResource()
    return platform


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_dpo_chain_end_to_end(dpo_platform: Platform) -> None:
    platform = dpo_platform
    records = {"ops": {"sft_records": {"config": {"heldout_percent": HELDOUT_PERCENT}}}, **QUIET}
    sft = {"ops": {"sft_adapter": {"config": {"max_steps": 1, "batch_size": 2}}}, **QUIET}
    assert platform.materialize(dg.AssetSelection.assets("base_model")).success
    sft_records = dg.AssetSelection.assets("sft_records", "sft_quarantine")
    assert platform.materialize(sft_records, BATCH, run_config=records).success
    assert platform.materialize(dg.AssetSelection.assets("sft_adapter"), run_config=sft).success

    chain = dg.AssetSelection.assets(
        "dpo_paths", "dpo_chosen", "dpo_rejections", "dpo_triples", "dpo_drops"
    )
    built = platform.materialize(chain, BATCH, run_config=QUIET)
    assert built.success
    heldout, train = _keys()
    assert _metadata(built, "dpo_paths")["dagster/row_count"] == 3  # the held-out ones only
    rejections = _metadata(built, "dpo_rejections")
    assert rejections["ok"] == 2 and rejections["failed"] == 1
    triples = _metadata(built, "dpo_triples")
    assert triples["paths"] == 3 == triples["triples"] + triples["dropped"]
    assert triples["drops_by_rule"] == {"rejection_failed": 1}
    assert triples["by_pair_type"] == {"different": 2}
    checks = {e.check_name: e.passed for e in built.get_asset_check_evaluations()}
    assert checks == {"dpo_triples_valid": True, "dpo_triples_heldout_only": True,
                      "dpo_triples_phi_free": True}  # fmt: skip

    with connect(platform.root / "warehouse.duckdb") as conn:
        stored = conn.execute(
            "select conversation_id, prompt, chosen, rejected from ark.dpo_triples"
        ).fetchall()
    assert {row[0] for row in stored} <= set(heldout) and not {row[0] for row in stored} & set(
        train
    )
    # the agent answered exactly the pair's prompt (plus the forced opening of the call)
    (policy,) = OPENED[-1:]
    asked = {request.prompt for request in policy.requests}
    assert all(prompt + CALL_OPENING in asked for _, prompt, _, _ in stored)
    assert all(CALL_OPENING.strip() in rejected for *_, rejected in stored)

    trained = platform.materialize(
        dg.AssetSelection.assets("dpo_adapter"),
        run_config={"ops": {"dpo_adapter": {"config": {"max_steps": 1}}}, **QUIET},
    )
    assert trained.success
    meta = _metadata(trained, "dpo_adapter")
    adapter = Path(meta["adapter_path"])
    assert (adapter / "adapter_model.safetensors").exists() and meta["global_step"] == 1
    assert meta["trl_version"] and "SFT" in meta["reference_policy"]
    assert meta["sft_adapter_sha256"]
    assert "data:image/png;base64," in meta["reward_plot"]  # the reward curves on the page
    assert meta["reference_max_abs_diff"] < 1e-5  # the reference is the frozen SFT policy

    audit = build_audit("dpo_adapter", platform.instance, platform.defs, platform.resources)
    ids = set(audit["conversations"]["ids"])
    assert {row[0] for row in stored} <= ids  # the pairs' conversations
    assert set(train) <= ids  # and what the SFT adapter it continues was trained on
