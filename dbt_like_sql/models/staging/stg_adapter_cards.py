"""One row per trained adapter: the ``training_card.json`` its trainer wrote beside it
(``<artifacts>/adapters/<kind>/<fingerprint>/``), the training set as it was then: base model,
examples, conversations, the batches they came from, the data digest, steps and loss."""

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

SCHEMA = {
    "adapter_kind": pl.Utf8,
    "fingerprint": pl.Utf8,
    "adapter_path": pl.Utf8,
    "base_model": pl.Utf8,
    "examples": pl.Int64,
    "conversations": pl.Int64,
    "record_batches": pl.List(pl.Utf8),
    "train_data_sha256": pl.Utf8,
    "global_step": pl.Int64,
    "train_loss": pl.Float64,
    "trained_at": pl.Datetime("us", "UTC"),
}


def card_row(path: Path) -> dict:
    card = json.loads(path.read_text())
    provenance = card.get("provenance", {})
    return {
        "adapter_kind": path.parent.parent.name,
        "fingerprint": path.parent.name,
        "adapter_path": str(path.parent),
        "base_model": provenance.get("base_model"),
        "examples": provenance.get("examples"),
        "conversations": provenance.get("conversations"),
        "record_batches": provenance.get("record_batches", []),
        "train_data_sha256": provenance.get("train_data_sha256"),
        "global_step": card.get("global_step"),
        "train_loss": card.get("train_loss"),
        "trained_at": datetime.fromtimestamp(path.stat().st_mtime, UTC),
    }


def model(dbt, session):
    dbt.config(materialized="table")
    artifacts = dbt.config.get("artifacts")
    cards = sorted(Path(artifacts, "adapters").glob("*/*/training_card.json"))
    return pl.DataFrame([card_row(path) for path in cards], schema=SCHEMA)
