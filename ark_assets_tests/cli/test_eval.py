"""`ark eval`: one result file, our (scripted) agent and the file's system, one report."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ark_assets.cli import main
from ark_assets.lib.agent.loop import AgentLoop, LoopSettings
from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.teacher import Teacher
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets.testing.scripted_policy import ScriptedPolicy, ask
from ark_assets_tests.conftest import SAMPLES


def test_ark_eval_scores_the_adapter_and_the_files_system(
    qwen_tokenizer: Any,
    kb: MemoryRetriever,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = (SAMPLES / "dialogues_zh_sample.jsonl").read_text().splitlines()[:4]
    conversations = [json.loads(line)["turns"][:1] for line in lines]
    entries = [
        {"model": "注意休息。", "src": {"instruction": "", "conversation": c}}
        for c in conversations
    ]
    items = tmp_path / "Baseline_zh_med_ask.json"
    items.write_text(json.dumps(entries, ensure_ascii=False))
    loop = AgentLoop(
        ScriptedPolicy(lambda r, n: ask()), qwen_tokenizer, kb, Teacher(RulesBackend()),
        LoopSettings(),
    )  # fmt: skip

    @contextmanager
    def scripted(adapter: Any, **_: Any) -> Iterator[AgentLoop]:
        yield loop

    monkeypatch.setattr("ark_assets.cli.agent.open_agent", scripted)
    monkeypatch.setenv("ARK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ARK_EMBEDDER", "hashing")
    main(["eval", "--items", str(items), "--out", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert "zh_med_ask" in out
    accuracy = {
        line.split()[1]: float(line.split()[3]) for line in out.splitlines() if " accuracy " in line
    }
    assert accuracy == {"base_model": 1.0, "Baseline": 0.0}  # always asks vs always tells
    assert (tmp_path / "report" / "report.html").exists()
