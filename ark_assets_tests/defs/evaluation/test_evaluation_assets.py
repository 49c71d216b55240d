"""The evaluation layer end to end: an eval-inbox file and the held-out split → items →
predictions of our system (through the agent loop) and of the file's system → the report."""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ark_assets.defs.agent.resources import PolicyResource
from ark_assets.defs.synthesis.resources import TeacherResource
from ark_assets.defs.training.resources import BaseModel
from ark_assets.lib.agent.policy import GenerationRequest, Policy
from ark_assets.testing.scripted_endpoint import Reply, ScriptedEndpoint, canned, output_name
from ark_assets.testing.scripted_policy import ScriptedPolicy, ask, tell
from ark_assets_tests.conftest import SAMPLES, Platform

COMPLIANCE = dg.AssetSelection.assets("deidentified_dialogues", "phi_findings")
KB = dg.AssetSelection.assets("kb_sources", "kb_quarantined_records", "kb_index")
IMPORT = dg.AssetSelection.assets("eval_items", "eval_quarantine", "imported_predictions")
REPORT = dg.AssetSelection.assets("heldout_eval_items", "eval_predictions", "eval_report")


def _script(request: GenerationRequest, _: int) -> str:
    """Ask when the patient's message ends the prompt with a question mark, else tell."""
    return ask(symptom=["发热"]) if "？<|im_end|>" in request.prompt else tell()


class ScriptedPolicyResource(PolicyResource):
    def open(self, base_model: Path, adapter: Path | None) -> Policy:
        return ScriptedPolicy(_script)


def _published(path: Path) -> Path:
    """A result file in MedArk's published form: another system's replies to three items."""
    turns = [
        json.loads(line)["turns"]
        for line in (SAMPLES / "dialogues_zh_sample.jsonl").read_text().splitlines()[20:23]
    ]
    entries = [
        {"model": reply, "src": {"instruction": "请回复患者", "conversation": conversation[:2]}}
        for conversation, reply in zip(turns, ["多久了？", "注意休息。", None], strict=True)
    ]
    path.write_text(json.dumps(entries, ensure_ascii=False))
    return path


@pytest.fixture
def eval_platform(platform: Platform, tiny_model: Path, tmp_path: Path) -> Platform:
    lines = (SAMPLES / "dialogues_zh_sample.jsonl").read_text().splitlines()[:40]
    sample = tmp_path / "zh_forty.jsonl"
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


def _sense_eval(platform: Platform) -> list[str]:
    from ark_assets.defs.evaluation.sensors import eval_inbox_sensor

    context = dg.build_sensor_context(
        instance=platform.instance, resources={"eval_inbox": platform.resources["eval_inbox"]}
    )
    result = eval_inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    keys = list(result.dynamic_partitions_requests[0].partition_keys or [])
    platform.instance.add_dynamic_partitions("eval_files", keys)
    return keys


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_result_file_and_the_held_out_split_end_in_one_report(eval_platform: Platform) -> None:
    platform = eval_platform
    inbox = Path(platform.resources["eval_inbox"].path)
    inbox.mkdir(parents=True, exist_ok=True)
    _published(inbox / "OtherBot_zh_med_ask.json")
    (key,) = _sense_eval(platform)
    imported = platform.materialize(IMPORT, key)
    assert imported.success
    items_meta = _metadata(imported, "eval_items")
    assert items_meta["records_read"] == 3 and items_meta["quarantined"] == 1  # the null reply
    assert items_meta["items"] == 3  # the null reply's item is still a test item

    config = {
        "ops": {"eval_predictions": {"config": {"items_per_set": 4, "systems": ["base_model"]}}}
    }
    report = platform.materialize(REPORT, run_config=config)
    assert report.success
    meta = _metadata(report, "eval_report")
    assert set(meta["systems"]) >= {"base_model", "OtherBot"}
    scores = meta["scores"]
    accuracy = {
        (s["test_set"], s["system"]): s["value"] for s in scores if s["metric"] == "accuracy"
    }
    # The other system asked on 1 of the 3 ask items ("多久了？" asks, "注意休息。" tells, and the
    # null reply counts as a miss, not as a smaller test set)
    assert accuracy[("zh_med_ask", "OtherBot")] == pytest.approx(1 / 3)
    assert ("zh_med_ask", "base_model") in accuracy  # our model ran on the same items
    for score in (s for s in scores if s["value"] is not None):
        low = -1.0 if score["metric"] == "embedding_similarity" else 0.0  # a cosine
        assert low <= score["value"] <= 1.0, score
    html = Path(meta["path"])
    assert html.exists() and "data:image/png;base64," in html.read_text()
    assert "data:image/png;base64," in meta["report"]


def _judge_script(body: dict[str, Any], n: int) -> Reply:
    """The judge's verdicts: everything informational and supported, rubric 4 everywhere."""
    verdicts: dict[str, dict[str, Any]] = {
        "QuestionVerdict": {"is_question": True},
        "InformationalVerdict": {"is_informational": True},
        "HallucinationVerdict": {"hallucinates": False},
        "RubricScores": dict.fromkeys(
            ("proactivity", "accuracy", "helpfulness", "linguistic_quality"), 4
        ),
    }
    name = output_name(body)
    if name not in verdicts:  # the entity stage: the canned, grounded answer
        return canned(body, n)
    return Reply(content=json.dumps({"reasoning": "r", **verdicts[name]}))


def test_judge_mode_adds_the_judged_metrics(eval_platform: Platform, tmp_path: Path) -> None:
    platform = eval_platform
    inbox = Path(platform.resources["eval_inbox"].path)
    inbox.mkdir(parents=True, exist_ok=True)
    _published(inbox / "OtherBot_zh_med_ask.json")
    (key,) = _sense_eval(platform)
    assert platform.materialize(IMPORT, key).success
    predictions = {"items_per_set": 2, "systems": ["base_model"]}
    judged = {"ops": {"eval_predictions": {"config": predictions},
                      "eval_report": {"config": {"judge": True}}}}  # fmt: skip
    # the rules teacher cannot judge: the run fails and says what to configure
    refused = platform.materialize(REPORT, run_config=judged, raise_on_error=False)
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    assert "configure an LLM teacher" in str(failure.step_failure_data.error)

    with ScriptedEndpoint(_judge_script) as endpoint:
        platform.resources["teacher"] = TeacherResource(
            backend="openai", model="judge-model", base_url=endpoint.base_url, api_key="local",
            cache_path=str(tmp_path / "judge-cache.sqlite"),
        )  # fmt: skip
        report = platform.materialize(REPORT, run_config=judged)
    assert report.success
    meta = _metadata(report, "eval_report")
    scores = {(s["test_set"], s["system"], s["metric"]): s for s in meta["scores"]}
    # the published file's free-text replies: the judge calls both questions (the detector
    # called "注意休息。" a tell), so OtherBot's accuracy on the ask set is 2 of 3 (null: a miss)
    assert scores[("zh_med_ask", "OtherBot", "accuracy")]["value"] == pytest.approx(2 / 3)
    assert scores[("zh_med_ask", "OtherBot", "rubric_accuracy")]["value"] == 4.0
    assert scores[("zh_med_ask", "OtherBot", "rubric_accuracy")]["n"] == 2  # the null: none
    assert "judge judge-model" in Path(meta["markdown"]).read_text()
    assert any(output_name(body) == "RubricScores" for body in endpoint.requests)
