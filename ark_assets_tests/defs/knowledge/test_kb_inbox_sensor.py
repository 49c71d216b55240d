"""The KB inbox sensor: one run per distinct set of QA files."""

from pathlib import Path

import dagster as dg

from ark_assets.defs.knowledge.resources import KbInbox
from ark_assets.defs.knowledge.sensors import kb_inbox_sensor


def _tick(instance: dg.DagsterInstance, inbox: KbInbox, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"kb_inbox": inbox}
    )
    result = kb_inbox_sensor(context)
    return result, context.cursor


def test_sensor_requests_a_run_per_change_of_the_file_set(tmp_path: Path) -> None:
    folder = tmp_path / "kb_inbox"
    inbox = KbInbox(path=str(folder), landing_path=str(tmp_path / "landing"))
    with dg.instance_for_test() as instance:
        result, cursor = _tick(instance, inbox, None)
        assert isinstance(result, dg.SkipReason)

        folder.mkdir()
        (folder / "a.jsonl").write_text('{"question": "发烧", "answer": "多喝水"}\n')
        (folder / ".b.jsonl.part").write_text("still uploading")
        result, cursor = _tick(instance, inbox, cursor)
        assert isinstance(result, dg.RunRequest) and result.run_key
        first_key = result.run_key

        result, cursor = _tick(instance, inbox, cursor)
        assert isinstance(result, dg.SkipReason) and "unchanged" in str(result.skip_message)

        (folder / "b.csv").write_text("question,answer\n头痛,休息\n")
        result, cursor = _tick(instance, inbox, cursor)
        assert isinstance(result, dg.RunRequest) and result.run_key != first_key

        (folder / "b.csv").unlink()
        result, cursor = _tick(instance, inbox, cursor)
        assert isinstance(result, dg.RunRequest)  # back to the first set: still a change
        assert result.run_key != first_key and result.tags == {"ark/kb_files": first_key[:12]}
