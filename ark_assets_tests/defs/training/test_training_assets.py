"""sft_records and sft_adapter through Dagster: records from stored paths, training via Pipes."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ark_assets.defs.training.resources import BaseModel
from ark_assets.lib.synthesis.models import EntityRecord
from ark_assets.lib.synthesis.tables import entities_frame, paths_frame
from ark_assets.lib.warehouse import connect
from ark_assets_tests.conftest import Platform
from ark_assets_tests.lib.training.paths import TEACHER, ask_path, tell_path

BATCH = "b1"


@pytest.fixture
def trained_platform(platform: Platform, tiny_model: Path) -> Platform:
    """A platform whose warehouse already holds Ark paths for batch b1 (as synthesis writes)."""
    paths = [ask_path(), tell_path()]
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
        for name, table in (
            ("ark_paths", paths_frame(paths)),
            ("ark_entities", entities_frame(entities)),
        ):
            arrow = table.to_arrow()  # noqa: F841  (read by name in the SQL below)
            conn.execute(f"create table ark.{name} as select * from arrow")
    platform.instance.add_dynamic_partitions("dialogue_batches", [BATCH])
    platform.resources["base_model"] = BaseModel(
        model=str(tiny_model), models_dir=str(platform.root / "models")
    )
    return platform


def test_records_then_adapter_through_pipes(trained_platform: Platform) -> None:
    platform = trained_platform
    assert platform.materialize(dg.AssetSelection.assets("base_model")).success
    records = platform.materialize(dg.AssetSelection.assets("sft_records", "sft_quarantine"), BATCH)
    assert records.success
    checks = {e.check_name: e.passed for e in records.get_asset_check_evaluations()}
    assert checks["sft_labels_are_one_assistant_turn"] and checks["sft_tool_calls_valid"]
    assert checks["sft_role_order_valid"] and checks["sft_split_disjoint"]
    database = str(platform.root / "warehouse.duckdb")
    with duckdb.connect(database, read_only=True) as conn:
        actions = dict(
            conn.execute("select action, count(*) from ark.sft_records group by 1").fetchall()
        )
    assert actions == {"RetrievalAction": 2, "AskAction": 1, "TellAction": 1}

    trained = platform.materialize(
        dg.AssetSelection.assets("sft_adapter"),
        run_config={"ops": {"sft_adapter": {"config": {"max_steps": 2, "batch_size": 2}}}},
    )
    assert trained.success
    (event,) = [
        e for e in trained.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("sft_adapter")
    ]  # fmt: skip
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["global_step"] == 2 and meta["examples"] >= 1
    assert Path(meta["adapter_path"], "adapter_model.safetensors").exists()
    assert meta["base_model_sha256"] and meta["train_data_sha256"]
    assert "data:image/png;base64," in meta["loss_plot"] and len(meta["loss_curve"].records) == 2


def test_training_runs_only_in_its_own_job() -> None:
    from ark_assets.definitions import defs

    job = defs().resolve_job_def("training_job")
    assert job.executor_def.name == "in_process"
    assert job.tags["ark/accelerator"] == "gpu"
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {"sft_adapter", "dpo_adapter"}
