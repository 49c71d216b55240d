"""A small warehouse with the platform's real table shapes, for the dbt project's tests.

The ingest and de-identification tables are written by the real assets on generated and fixture
files (so their rows, landed files and PHI findings are the platform's own); the layers whose
assets need a teacher, a tokenizer or a trained adapter (synthesis, SFT, DPO, evaluation) get
rows built against their column contracts from the ingested conversations, with the real
split rule. ``agent_smoke`` and ``ark_entities`` are left unwritten: the models over them must
be left out of the build, not fail it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ark_assets.lib.evaluation.tables import FILE_ITEMS, PREDICTIONS
from ark_assets.lib.knowledge.tables import KB_QUARANTINED_RECORDS, KB_RETRIEVAL_EVAL, KB_SOURCES
from ark_assets.lib.synthesis.tables import failures_frame, paths_frame
from ark_assets.lib.tables import frame
from ark_assets.lib.training.dpo_pairs import DPO_DROPS, DPO_TRIPLES
from ark_assets.lib.training.render import split_of
from ark_assets.lib.training.sft_records import SFT_QUARANTINE, SFT_RECORDS
from ark_assets.lib.warehouse import connect
from ark_assets.testing.dialogues import write_jsonl
from ark_assets_tests.conftest import BAD_INPUTS, INGEST_SELECTION, Platform
from ark_assets_tests.defs.synthesis.conftest import DEIDENTIFY
from ark_assets_tests.lib.training.paths import ask_path, tell_path

NOT_WRITTEN = ("agent_smoke", "ark_entities")
DOC_IDS = ("d1", "d2", "d3", "d4")  # d1 is the one ask_path() retrieves; d4 is never retrieved
NOW = datetime(2025, 6, 26, tzinfo=UTC)
HELDOUT_PERCENT = 10


def build(platform: Platform) -> list[str]:
    """Ingest and de-identify two files, then write the other layers' tables; the batches.

    The first file mixes generated dialogues, the fake-PHI fixture (PHI findings) and one record
    with wrong keys; the second is quarantined whole (a batch with nothing accepted)."""
    mixed = write_jsonl(platform.root / "files" / "mixed.jsonl", 24)
    wrong_keys = BAD_INPUTS / "03_wrong_keys.jsonl"
    with mixed.open("a", encoding="utf-8") as handle:
        handle.write((BAD_INPUTS / "09_phi_like_FAKE.jsonl").read_text(encoding="utf-8"))
        handle.write(wrong_keys.read_text(encoding="utf-8").splitlines()[0] + "\n")
    platform.drop(mixed, wrong_keys)
    batches = platform.sense()
    for batch in batches:
        assert platform.materialize(INGEST_SELECTION | DEIDENTIFY, batch).success, batch
    database = platform.root / "warehouse.duckdb"
    with connect(database) as conn:
        tagged = conn.execute("select * from ark.tagged_dialogues order by conversation_id").pl()
        for table, rows in downstream_tables(tagged).items():
            write(conn, table, rows)
    write_training_card(Path(platform.resources["artifacts"].root), tagged)
    return batches


def write(conn: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame) -> None:
    conn.execute(f"create or replace table ark.{table} as select * from rows")


def downstream_tables(tagged: pl.DataFrame) -> dict[str, pl.DataFrame]:
    conversations = tagged.select("batch", "conversation_id", "medark_key", "language").to_dicts()
    paths = [_path(c, turn) for c in conversations for turn in (0, 1)]
    records = paths_frame(paths)
    heldout = [c for c in conversations if _split(c) == "heldout"]
    assert heldout and len(heldout) < len(conversations), "the fixture needs both splits"
    items = _heldout_items(heldout)
    return {
        "kb_sources": frame([_document(d) for d in DOC_IDS], KB_SOURCES),
        "kb_quarantined_records": frame([], KB_QUARANTINED_RECORDS),
        "kb_retrieval_eval": frame([_retrieval_eval()], KB_RETRIEVAL_EVAL),
        "ark_paths": records,
        "ark_failures": failures_frame([]),
        "sft_records": frame([_sft(p, step) for p in paths for step in (0, 1)], SFT_RECORDS),
        "sft_quarantine": frame([_sft_quarantined(paths[0])], SFT_QUARANTINE),
        "dpo_triples": frame([_triple(c, i) for i, c in enumerate(heldout)], DPO_TRIPLES),
        "dpo_drops": frame([_drop(conversations[0])], DPO_DROPS),
        "heldout_eval_items": items.drop("eval_file"),
        "eval_items": _published_items(),
        "eval_predictions": _predictions(items, _published_items()),
    }


def _split(conversation: dict[str, Any]) -> str:
    return split_of(conversation["medark_key"], HELDOUT_PERCENT)


def _path(conversation: dict[str, Any], turn: int) -> Any:
    """An asking path with two retrieval rounds at turn 1, a telling one without at turn 0."""
    template = ask_path() if turn == 1 else tell_path()
    return template.model_copy(
        update={
            "batch": conversation["batch"],
            "conversation_id": conversation["conversation_id"],
            "medark_key": conversation["medark_key"],
            "turn_index": turn,
            "language": conversation["language"],
        }
    )


def _document(doc_id: str) -> dict[str, Any]:
    return {
        "doc_id": doc_id,
        "question": f"question {doc_id}",
        "answer": f"answer {doc_id}",
        "source": "kb_sample",
        "language": "zh",
        "source_file": "kb_qa_sample.jsonl",
        "file_sha256": "f" * 64,
        "record_index": DOC_IDS.index(doc_id),
        "source_format": "jsonl",
        "occurrences": 1,
        "loaded_at": NOW,
    }


def _retrieval_eval() -> dict[str, Any]:
    metrics = ("recall_at_1", "recall_at_5", "mrr", "recall_at_5_question",
               "recall_at_5_perturbed", "recall_at_5_answer")  # fmt: skip
    return {"embedder": "hashing-1024", "mode": "hybrid", "queries": 12,
            **dict.fromkeys(metrics, 0.75), "queries_per_s": 900.0}  # fmt: skip


def _sft(path: Any, step: int) -> dict[str, Any]:
    n_tokens = 300 + 10 * step + path.turn_index
    return {
        "batch": path.batch,
        "conversation_id": path.conversation_id,
        "medark_key": path.medark_key,
        "turn_index": path.turn_index,
        "step": step,
        "action": "RetrievalAction" if step == 0 and path.rounds else (
            "AskAction" if path.is_asking else "TellAction"),
        "split": split_of(path.medark_key, HELDOUT_PERCENT),
        "n_tokens": n_tokens,
        "prompt_tokens": n_tokens - 40,
        "label_tokens": 40,
        "input_ids": list(range(n_tokens)),
        "label_text": "<tool_call>…</tool_call>",
        "messages_json": "[]",
        "prompt_version": f"sft-{path.language}-v1",
    }  # fmt: skip


def _sft_quarantined(path: Any) -> dict[str, Any]:
    return {"batch": path.batch, "conversation_id": path.conversation_id,
            "turn_index": path.turn_index, "step": 2, "rule": "over_length",
            "message": "2100 tokens > max_length 2048", "n_tokens": 2100}  # fmt: skip


def _triple(conversation: dict[str, Any], index: int) -> dict[str, Any]:
    same = index % 2 == 0
    return {
        **{k: conversation[k] for k in ("batch", "conversation_id", "medark_key", "language")},
        "turn_index": 1,
        "pair_type": "same" if same else "different",
        "chosen_action": "AskAction",
        "rejected_action": "AskAction" if same else "TellAction",
        "rejection_mode": "forced_prefix",
        "prompt": "<|im_start|>system…",
        "chosen": "<tool_call>…",
        "rejected": "<tool_call>…",
        "prompt_tokens": 260,
        "chosen_tokens": 30 + index,
        "rejected_tokens": 25,
        "messages_json": "[]",
        "prompt_version": "sft-zh-v1",
    }


def _drop(conversation: dict[str, Any]) -> dict[str, Any]:
    return {"batch": conversation["batch"], "conversation_id": conversation["conversation_id"],
            "turn_index": 0, "rule": "same_action", "message": "both tell"}  # fmt: skip


def _item(test_set: str, item_id: str, action: str, conversation: dict[str, Any] | None) -> dict:
    return {
        "eval_file": None if conversation else "zh_med_ask.json__0123456789ab",
        "test_set": test_set,
        "item_id": item_id,
        "source_file": "deidentified_dialogues" if conversation else "zh_med_ask.json",
        "language": "zh",
        "instruction": "",
        "history_json": "[]",
        "patient_message": "头痛三天",
        "reference": "有没有发烧？",
        "reference_action": action,
        "medark_key": conversation["medark_key"] if conversation else "m" * 64,
        "conversation_id": conversation["conversation_id"] if conversation else None,
    }


def _heldout_items(heldout: list[dict[str, Any]]) -> pl.DataFrame:
    rows = [
        _item(f"heldout_{action}", f"h{i}{action}", action, c)
        for i, c in enumerate(heldout)
        for action in ("ask", "tell")
    ]
    return frame(rows, FILE_ITEMS)


def _published_items() -> pl.DataFrame:
    return frame([_item("zh_med_ask", f"p{i}", "ask", None) for i in range(4)], FILE_ITEMS)


def _predictions(heldout: pl.DataFrame, published: pl.DataFrame) -> pl.DataFrame:
    """base_model always tells; the adapter answers like the reference except on one item each
    set, and fails on one published item."""
    rows = []
    for items in (heldout, published):
        for index, item in enumerate(items.iter_rows(named=True)):
            reference = item["reference_action"]
            wrong = "tell" if reference == "ask" else "ask"
            for system, action in (
                ("base_model", "tell"),
                ("sft_adapter@abc", wrong if index == 0 else reference),
            ):
                failed = system == "sft_adapter@abc" and items is published and index == 1
                rows.append({
                    "test_set": item["test_set"], "system": system, "item_id": item["item_id"],
                    "text": None if failed else "回复", "action": None if failed else action,
                    "action_source": "tool", "entities_json": None,
                    "failure": "malformed tool call" if failed else None, "extra_json": "{}",
                })  # fmt: skip
    return frame(rows, PREDICTIONS)


def write_training_card(artifacts: Path, tagged: pl.DataFrame) -> Path:
    """An SFT adapter's training_card.json as sft_train writes it (the fields the mart reads)."""
    folder = artifacts / "adapters" / "sft" / "0123456789abcdef"
    folder.mkdir(parents=True, exist_ok=True)
    card = {
        "base_model_path": "/models/base",
        "provenance": {
            "base_model": "SmolLM2-135M-Instruct",
            "record_batches": sorted(tagged["batch"].unique().to_list()),
            "conversations": tagged.height,
            "train_data_sha256": "a" * 64,
            "examples": 40,
            "fingerprint": folder.name,
        },
        "settings": {"lora": {"r": 8}},
        "global_step": 20,
        "final_loss": 0.5,
        "train_loss": 0.75,
    }
    path = folder / "training_card.json"
    path.write_text(json.dumps(card, indent=2))
    return path
