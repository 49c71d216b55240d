"""The incremental benchmark's inputs: the new file is 1% of the data, files go to their inbox,
and the report says whether the knowledge base reran."""

import json
from pathlib import Path

from ark_assets.bench.incremental import Build, _by_inbox, _kb_line, write_files


def test_the_new_file_is_one_percent_of_the_data(tmp_path: Path) -> None:
    old, new = write_files(tmp_path, files=4, per_file=25, extra=1)
    counts = [len(p.read_text().splitlines()) for p in [*old, new]]
    assert counts == [25, 25, 25, 25, 1]
    first_turns = {
        json.dumps(json.loads(line)["turns"][0])
        for p in [*old, new]
        for line in p.read_text().splitlines()
    }
    assert len(first_turns) == 101  # every dialogue new: nothing collapses as a duplicate


def test_files_go_to_their_inbox(tmp_path: Path) -> None:
    kb, dialogues = tmp_path / "kb_qa_sample.jsonl", tmp_path / "dialogues_000.jsonl"
    assert _by_inbox([dialogues, kb]) == {"inbox": [dialogues], "kb_inbox": [kb]}
    assert _by_inbox([dialogues]) == {"inbox": [dialogues]}


def test_the_report_names_a_knowledge_base_rerun() -> None:
    quiet = Build(1.0, 2, 0, ["raw_dialogues", "sft_records"])
    rerun = Build(1.0, 3, 0, ["kb_index", "raw_dialogues"])
    assert "did not rerun" in _kb_line(quiet)
    assert "reran (kb_index)" in _kb_line(rerun)
