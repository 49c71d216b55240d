"""The ``reproduce`` section: what a rebuild needs — the inputs by content digest, each run's
configuration, the code versions, the training settings and the environment at audit time."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import resources as package_files
from pathlib import Path
from typing import Any

import dagster as dg

from ark_assets.audit.events import CODE_VERSION, Materialization
from ark_assets.audit.lineage import Used
from ark_assets.lib import audit_report as report

_PACKAGES = ("dagster", "polars", "duckdb", "chromadb", "torch", "transformers", "peft", "trl")


def reproduce(
    instance: dg.DagsterInstance,
    used: Used,
    card: Mapping[str, Any],
    audit: Mapping[str, Any],
) -> dict[str, Any]:
    """What a rebuild needs: the inputs by content digest, each run's configuration, the code
    versions, the training settings (seed included) and the environment."""
    records = used.everything()
    runs: dict[str, dict[str, Any]] = {}
    for m in records:
        entry = runs.get(m.run_id)
        if entry is None:
            run = instance.get_run_by_id(m.run_id)
            entry = runs[m.run_id] = {
                "job": run.job_name if run else None,
                "run_config": report.redact(dict(run.run_config)) if run else None,
                "tags": report.redact(dict(run.tags)) if run else None,
                "assets": [],
            }
        asset = m.asset.to_user_string()
        if asset not in entry["assets"]:
            entry["assets"].append(asset)
    base, kb = audit["base_model"], audit["knowledge_base"]
    reproduce: dict[str, Any] = {
        "inputs": {
            "source_files": [
                {"name": f["name"], "sha256": f["sha256"], "batch": f["batch"]}
                for f in audit["sources"]["files"]
            ],
            "batches": audit["conversations"].get("batches"),
            "conversations_sha256": audit["conversations"].get("sha256"),
            "base_model": {"id": base.get("model_id"), "sha256": base.get("sha256")}
            if base
            else None,
            "kb_data_versions": sorted({s["data_version"] for s in kb.get("snapshots", [])}),
            "teacher_caches": sorted(
                {
                    str(m.metadata["teacher_cache"])
                    for m in records
                    if m.metadata.get("teacher_cache")
                }
            ),
        },
        "code_versions": {
            asset: ", ".join(sorted(versions))
            for asset, versions in _code_versions(records).items()
        },
        "runs": runs,
    }
    if card:
        reproduce["training"] = {
            "settings": card.get("settings"),
            "provenance": card.get("provenance"),
            "base_model_path": card.get("base_model_path"),
            "global_step": card.get("global_step"),
        }
    reproduce["environment_at_audit"] = _environment()
    return reproduce


def _code_versions(records: Sequence[Materialization]) -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for m in records:
        versions.setdefault(m.asset.to_user_string(), set()).add(m.tags.get(CODE_VERSION, "?"))
    return versions


def _environment() -> dict[str, Any]:
    """Code and library versions now (the audit's, which a rebuild should match)."""
    packages: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {"git": _git_state(), "python": platform.python_version(), "packages": packages}


def _git_state() -> dict[str, Any] | None:
    here = Path(str(package_files.files("ark_assets")))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
