"""De-identifying warehouse frames: dialogues, KB documents, and the residual scan of checks."""

import json

import polars as pl

from ark_assets.lib.compliance.deidentify import (
    deidentify_dialogues,
    deidentify_documents,
    message_texts,
    residual_phi,
    turn_texts,
)
from ark_assets.lib.ingest.tables import TAGGED_DIALOGUES
from ark_assets.lib.tables import frame
from ark_assets_tests.lib.compliance.test_phi import FIXTURE_IDENTIFIERS, fixture_records


def _tagged(dialogues: list[dict]) -> pl.DataFrame:
    rows = [
        {
            "batch": "b1",
            "conversation_id": f"c{i}",
            "medark_key": f"c{i}",
            "dialogue_sha256": f"d{i}",
            "source_file": "fake.jsonl",
            "record_index": i,
            "source": d["source"],
            "source_id": d["source_id"],
            "language": d["language"],
            "n_turns": len(d["turns"]),
            "turns_json": json.dumps(d["turns"], ensure_ascii=False),
            "occurrences": 1,
        }
        for i, d in enumerate(dialogues)
    ]
    return frame(rows, TAGGED_DIALOGUES)


def test_fixture_identifiers_leave_no_trace() -> None:
    result = deidentify_dialogues(_tagged(fixture_records()))
    stored = result.dialogues.write_csv() + result.findings.write_csv()
    leaked = [value for value in FIXTURE_IDENTIFIERS if value in stored]
    assert leaked == []
    assert residual_phi(turn_texts(result.dialogues["turns_json"])) == {}
    assert result.dialogues["phi_findings"].to_list() == (
        result.findings.group_by("conversation_id").len().sort("conversation_id")["len"].to_list()
    )
    assert {"NAME", "PHONE", "ID", "MRN", "EMAIL", "ADDRESS"} <= set(result.counts_by_type())


def test_placeholders_are_consistent_within_a_dialogue_only() -> None:
    result = deidentify_dialogues(_tagged(fixture_records()))
    zh = json.loads(result.dialogues["turns_json"][0])
    # 张测试 introduces herself in turn 0 and is greeted by name in the doctor's reply.
    assert zh[0]["patient"].startswith("我叫[NAME_1]") and zh[0]["doctor"].startswith("[NAME_1]")
    assert list(zh[0]) == ["patient", "doctor"]  # key order kept: MedArk's key depends on it
    en = json.loads(result.dialogues["turns_json"][1])
    assert "[NAME_1]" in en[0]["patient"] and "[NAME_1]" in en[0]["doctor"]  # Jane, both turns
    by_dialogue = result.findings.group_by("conversation_id").agg(pl.col("placeholder").n_unique())
    assert by_dialogue.height == 2


def test_dialogues_without_phi_pass_through_unchanged() -> None:
    clean = [
        {"source": "s", "source_id": "1", "language": "zh",
         "turns": [{"patient": "发烧38.5度三天了，每天吃3次药。", "doctor": "血压120/80吗？"}]},
    ]  # fmt: skip
    tagged = _tagged(clean)
    result = deidentify_dialogues(tagged)
    assert result.dialogues["turns_json"].to_list() == tagged["turns_json"].to_list()
    assert result.findings.is_empty() and result.dialogues["phi_findings"].to_list() == [0]


def test_kb_documents_keep_their_identity() -> None:
    documents = pl.DataFrame(
        {
            "doc_id": ["a", "b"],
            "question": ["宋医生，你好，我7月12号做了雾化。", "咳嗽怎么办？"],
            "answer": ["宋医生建议：多喝水。", "多休息。"],
            "language": ["zh", None],
        }
    )
    redacted, by_type = deidentify_documents(documents)
    assert redacted["doc_id"].to_list() == ["a", "b"]
    assert redacted["question"][0] == "[NAME_1]医生，你好，我[DATE_1]做了雾化。"
    assert redacted["answer"][0] == "[NAME_1]医生建议：多喝水。"  # same name, same placeholder
    assert redacted.row(1) == documents.row(1)
    assert by_type == {"NAME": 2, "DATE": 1}


def test_residual_scan_reads_every_message_and_tool_call() -> None:
    transcript = [
        {"role": "user", "content": "Patient: my number is (202) 555-0143."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "AskAction",
             "arguments": {"reasoning": "Ask Dr. Jane Testperson", "question": "ok?"}}}]},
    ]  # fmt: skip
    texts = list(message_texts([json.dumps(transcript)]))
    assert residual_phi(texts) == {"PHONE/us_phone": 1, "NAME/en_honorific_name": 1}
    assert residual_phi(["Patient: my number is [PHONE_1].", "Dr. [NAME_1] will call."]) == {}
