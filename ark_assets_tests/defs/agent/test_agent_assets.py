"""agent_smoke through Dagster: de-identified dialogues + the KB index + a student → agent runs."""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from ark_assets.defs.agent.resources import PolicyResource
from ark_assets.defs.training.resources import BaseModel
from ark_assets.lib.agent.policy import GenerationRequest, Policy
from ark_assets.testing.scripted_policy import ScriptedPolicy, ask, retrieve, tell
from ark_assets_tests.conftest import SAMPLES, Platform

COMPLIANCE = dg.AssetSelection.assets("deidentified_dialogues", "phi_findings")
KB = dg.AssetSelection.assets("kb_sources", "kb_quarantined_records", "kb_index")


def _script(request: GenerationRequest, _: int) -> str:
    """Retrieve once, then ask when the patient's last message has a question mark, else tell."""
    if "<tool_response>" not in request.prompt:
        return retrieve("发烧怎么办")
    return ask(symptom=["发热"]) if request.prompt.count("？") % 2 else tell()


class ScriptedPolicyResource(PolicyResource):
    """The policy resource with its backend replaced by a script (what a test can pin down)."""

    def open(self, base_model: Path, adapter: Path | None) -> Policy:
        assert (base_model / "config.json").exists()  # the student checkpoint base_model wrote
        return ScriptedPolicy(_script)


@pytest.fixture
def agent_platform(platform: Platform, tiny_model: Path, tmp_path: Path) -> Platform:
    lines = (SAMPLES / "dialogues_zh_sample.jsonl").read_text().splitlines()[:6]
    sample = tmp_path / "zh_six.jsonl"
    sample.write_text("\n".join(lines) + "\n")
    (batch,) = platform.ingest(sample)
    assert platform.materialize(COMPLIANCE, batch).success
    kb_inbox = Path(platform.resources["kb_inbox"].path)
    kb_inbox.mkdir(parents=True, exist_ok=True)
    pairs = (SAMPLES / "kb_qa_sample.jsonl").read_text().splitlines()[:200]
    (kb_inbox / "kb.jsonl").write_text("\n".join(pairs) + "\n")
    assert platform.materialize(KB).success
    platform.resources["base_model"] = BaseModel(
        model=str(tiny_model), models_dir=str(platform.root / "models")
    )
    assert platform.materialize(dg.AssetSelection.assets("base_model")).success
    platform.resources["policy"] = ScriptedPolicyResource()
    return platform


def _config(**fields: Any) -> dict[str, Any]:
    return {"ops": {"agent_smoke": {"config": {"heldout_percent": 100, **fields}}}}


def test_agent_smoke_runs_the_held_out_prefixes_through_the_loop(agent_platform: Platform) -> None:
    platform = agent_platform
    result = platform.materialize(
        dg.AssetSelection.assets("agent_smoke"), run_config=_config(max_prefixes=5)
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["prefixes"] == 5 and meta["ok"] == 5 and meta["failed"] == 0
    assert meta["retrievals"] == 5 and meta["parse_forms"]["tool_call"] == 10
    assert sum(meta["actions"].values()) == 5 and meta["adapter"] == "(base model)"
    database = platform.root / "warehouse.duckdb"
    with duckdb.connect(str(database), read_only=True) as conn:
        rows = conn.execute(
            "select status, final_action, retrievals, steps_json, policy_json "
            "from ark.agent_smoke order by conversation_id, turn_index"
        ).fetchall()
    assert len(rows) == 5 and {r[0] for r in rows} == {"ok"}
    steps = json.loads(rows[0][3])
    assert [s["call"] for s in steps] == ["RetrievalAction", rows[0][1]]
    assert steps[0]["queries"] == ["发烧怎么办"] and len(steps[0]["refined"]) == 1
    assert json.loads(rows[0][4])["backend"] == "scripted"


def test_agent_smoke_waits_for_a_new_adapter_not_for_new_dialogues() -> None:
    from ark_assets.definitions import defs

    spec = next(s for s in defs().resolve_all_asset_specs() if s.key.path == ["agent_smoke"])
    assert spec.automation_condition is not None
    assert spec.automation_condition.get_label() == "after a new sft_adapter"
    assert spec.group_name == "agent"
