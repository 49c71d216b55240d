"""Preparing a training run: its inputs on disk, its settings, and a stable fingerprint.

The fingerprint covers the training data, the hyperparameters and the base model, so a rerun
with the same inputs finds the same checkpoint directory and resumes; anything else starts a
new run directory, and the adapter lands in a directory named by the same fingerprint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ark_assets.lib.hashing import ids_digest, sha256_bytes

TRAIN_COLUMNS = ("input_ids", "prompt_tokens")  # SFT; DPO trains on prompt, chosen, rejected
LINEAGE_FILE = "lineage.json"
# The Pipes extra in which a launcher hands the trainer the settings written here (sft_train,
# dpo_train): a trainer in a pod cannot read a file on the orchestrator's disk.
SETTINGS_EXTRA = "settings"


def lineage_of(
    examples: pl.DataFrame, inherited: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Which conversations and batches a training set was built from (identifiers only): the
    adapter carries it, so an audit names them and a deletion request can taint it.
    ``inherited`` is the lineage of the adapter this run continues (DPO continues SFT): an
    adapter holds what its starting point learned too."""
    conversations = set(examples["conversation_id"].unique().to_list())
    batches = set(examples["batch"].unique().to_list())
    if inherited:
        conversations |= set(inherited.get("conversation_ids", []))
        batches |= set(inherited.get("batches", []))
    return {
        "conversation_ids": sorted(conversations),
        "conversations_sha256": ids_digest(sorted(conversations)),
        "batches": sorted(batches),
    }


def prepare_run(
    kind: str,
    examples: pl.DataFrame,
    hyperparameters: dict[str, Any],
    base_model_path: Path,
    artifacts_root: Path,
    provenance: dict[str, Any],
    columns: Sequence[str] = TRAIN_COLUMNS,
    inherited_lineage: Mapping[str, Any] | None = None,
    data_setting: str = "records_path",
) -> Path:
    """Write ``records.parquet`` and ``settings.json`` for a trainer; returns the settings path."""
    table = examples.select(columns)
    data_digest = sha256_bytes(table.write_ipc(None).getvalue())
    fingerprint = sha256_bytes(
        json.dumps([data_digest, hyperparameters, provenance.get("base_model_sha256")]).encode()
    )[:16]
    run_dir = artifacts_root / "training" / kind / fingerprint
    run_dir.mkdir(parents=True, exist_ok=True)
    table.write_parquet(run_dir / "records.parquet")
    lineage = lineage_of(examples, inherited_lineage)
    (run_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=1))
    settings = {
        **hyperparameters,
        "base_model_path": str(base_model_path),
        data_setting: str(run_dir / "records.parquet"),
        "output_dir": str(artifacts_root / "adapters" / kind / fingerprint),
        "checkpoint_dir": str(run_dir / "checkpoints"),
        "lineage_path": str(run_dir / LINEAGE_FILE),
        "provenance": {
            **provenance,
            "conversations": len(lineage["conversation_ids"]),
            "conversations_sha256": lineage["conversations_sha256"],
            "train_data_sha256": data_digest,
            "examples": table.height,
            "fingerprint": fingerprint,
        },
    }
    path = run_dir / "settings.json"
    path.write_text(json.dumps(settings, indent=2))
    return path
