"""The ``teacher``, ``knowledge_base`` and ``base_model`` sections: the models and the knowledge
base whose output went into the artifact, as their materializations recorded them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ark_assets.audit.events import DATA_VERSION, Materialization
from ark_assets.lib import audit_report as report


def _distinct(rows: Iterable[dict[str, Any]], assets_of: Sequence[str]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for row, asset in zip(rows, assets_of, strict=True):
        entry = merged.setdefault(json.dumps(row, sort_keys=True), {**row, "assets": []})
        if asset not in entry["assets"]:
            entry["assets"].append(asset)
    return list(merged.values())


def teacher(everything: Sequence[Materialization]) -> list[dict[str, Any]]:
    found = [m for m in everything if "teacher_backend" in m.metadata]
    rows = [
        {
            "backend": m.metadata.get("teacher_backend"),
            "model": m.metadata.get("teacher_model"),
            "note": m.metadata.get("teacher_note"),
        }
        for m in found
    ]
    return _distinct(rows, [m.asset.to_user_string() for m in found])


def knowledge_base(everything: Sequence[Materialization]) -> dict[str, Any]:
    snapshots = [
        {
            "asset": m.asset.to_user_string(),
            "collection": m.metadata.get("collection"),
            "embedder": m.metadata.get("embedder"),
            "dimension": m.metadata.get("dimension"),
            "documents": m.row_count,
            "data_version": m.tags.get(DATA_VERSION),
            "materialized_at": report.iso_time(m.timestamp),
            "path": m.metadata.get("path"),
        }
        for m in everything
        if "collection" in m.metadata and "embedder" in m.metadata
    ]
    queried = [m for m in everything if "kb_collection" in m.metadata]
    rows = [
        {
            "kb": m.metadata.get("kb"),
            "collection": m.metadata.get("kb_collection"),
            "embedder": m.metadata.get("kb_embedder"),
            "documents": m.metadata.get("kb_documents"),
            "data_version": m.metadata.get("kb_data_version"),
        }
        for m in queried
    ]
    if not snapshots and not queried:
        return {}
    return {
        "snapshots": snapshots,
        "queried": _distinct(rows, [m.asset.to_user_string() for m in queried]),
    }


def base_model(
    everything: Sequence[Materialization], record: Materialization | None, card: Mapping[str, Any]
) -> dict[str, Any]:
    base = next(
        (m for m in everything if {"architecture", "sha256", "model_id"} <= set(m.metadata)), None
    )
    found: dict[str, Any] = {}
    if base is not None:
        found = {
            key: base.metadata.get(key)
            for key in ("model_id", "sha256", "source_sha256", "architecture", "parameters")
        }
        found["template"] = base.metadata.get("template")
        found["materialized_at"] = report.iso_time(base.timestamp)
    claims = dict(card.get("provenance") or {})
    if record is not None:
        claims.update(
            {
                k: record.metadata[k]
                for k in ("base_model", "base_model_sha256")
                if k in record.metadata
            }
        )
    if claims.get("base_model_sha256"):
        found["trained_on"] = claims.get("base_model")
        found["trained_on_sha256"] = claims["base_model_sha256"]
        if base is not None:
            found["sha256_consistent"] = claims["base_model_sha256"] == found["sha256"]
    return found
