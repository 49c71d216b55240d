"""The dbt project in ``dbt_like_sql/``: where it is, its manifest, and how dbt is run on it.

The manifest is never committed: it is built by ``dbt parse`` when the code location loads and
the project's files changed since the last parse (a digest of them is kept beside it), so a
checkout, a wheel and a container all load the models they ship. It lives in
``target/dagster/``, apart from the ``target/`` that ``dbt`` run by hand writes, and is replaced
atomically under a lock: every step process of a run loads the code location, and none may read
a half-written manifest.

The platform passes dbt its paths as ``--vars`` (``dbt_vars``): ``profiles.yml`` and the models
read ``var('ark_warehouse')`` and ``var('ark_landing')``, which default to ``ARK_WAREHOUSE`` /
``ARK_DATA_DIR`` for dbt run by hand from ``dbt_like_sql/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# The project ships beside the package: in a checkout and, as a data folder, in the wheel.
DEFAULT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_like_sql"
SOURCE_NAME = "ark"  # the dbt source: the tables the Python assets write (schema ark)
MANIFEST_DIR = Path("target", "dagster")
_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "tests", "macros")
# dbt commands that never open the warehouse, so run without its lock.
NO_DATABASE_COMMANDS = frozenset({"parse", "ls", "list", "deps", "clean", "debug", "init"})


class ProjectParseError(RuntimeError):
    """``dbt parse`` failed: the message carries dbt's own error lines."""


def project_dir() -> Path:
    """``ARK_DBT_PROJECT_DIR`` when set, else the ``dbt_like_sql/`` shipped with the package."""
    return Path(os.environ.get("ARK_DBT_PROJECT_DIR", DEFAULT_PROJECT_DIR)).resolve()


def dbt_executable() -> str:
    """The ``dbt`` of the environment dbt-core is installed in (not whatever is on PATH)."""
    beside = Path(sys.executable).with_name("dbt")
    if beside.exists():
        return str(beside)
    files = metadata.distribution("dbt-core").files or []
    for entry in files:
        if entry.name == "dbt" and entry.parent.name == "bin":
            return str(Path(str(entry.locate())).resolve())
    return shutil.which("dbt") or "dbt"


def dbt_vars(database: str | Path, landing: str | Path, artifacts: str | Path) -> str:
    """The ``--vars`` that point dbt at this platform's warehouse file and folders (absolute:
    dbt runs in the project's folder)."""
    return json.dumps(
        {
            "ark_warehouse": str(Path(database).resolve()),
            "ark_landing": str(Path(landing).resolve()),
            "ark_artifacts": str(Path(artifacts).resolve()),
        }
    )


def source_digest(root: Path) -> str:
    """sha256 over the project's own files (models, tests, macros, configuration)."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        top = root / name
        paths = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for path in (p for p in paths if p.exists() and "__pycache__" not in p.parts):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    path: Path
    digest: str
    parsed: bool  # False when the existing manifest was current


def prepare_manifest(root: Path, executable: str | None = None) -> Manifest:
    """``target/dagster/manifest.json`` for the project as it is now, parsing when it changed."""
    target = root / MANIFEST_DIR
    manifest, stamp = target / "manifest.json", target / "manifest.sha256"
    digest = source_digest(root)
    if manifest.exists() and stamp.exists() and stamp.read_text() == digest:
        return Manifest(manifest, digest, parsed=False)
    target.mkdir(parents=True, exist_ok=True)
    with (target / "parse.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.exists() and stamp.exists() and stamp.read_text() == digest:
            return Manifest(manifest, digest, parsed=False)
        _parse(root, target / "parse", executable or dbt_executable())
        os.replace(target / "parse" / "manifest.json", manifest)
        partial = stamp.with_suffix(".tmp")
        partial.write_text(digest)
        os.replace(partial, stamp)
    return Manifest(manifest, digest, parsed=True)


def _parse(root: Path, target: Path, executable: str) -> None:
    command = [
        executable, "parse", "--project-dir", str(root), "--profiles-dir", str(root),
        "--target-path", str(target),
    ]  # fmt: skip
    env = {
        **os.environ,
        "DBT_LOG_PATH": str(target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stdout.splitlines() if line.strip()][-15:]
        raise ProjectParseError(
            f"dbt parse failed in {root} (exit {done.returncode}); fix the file it names and "
            f"run `ark dbt parse` to check:\n" + "\n".join(lines)
        )


def read_manifest(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def required_tables(manifest: Mapping[str, Any]) -> set[str]:
    """The ``ark`` source's tables that models need to exist; a table marked
    ``meta.ark.empty_when_missing`` (read through ``source_or_empty``) is not among them."""
    required = set()
    for source in manifest.get("sources", {}).values():
        meta = source.get("config", {}).get("meta") or source.get("meta") or {}
        if source["source_name"] == SOURCE_NAME and not meta.get("ark", {}).get(
            "empty_when_missing"
        ):
            required.add(source["name"])
    return required


def exclusions(manifest: Mapping[str, Any], existing: Iterable[str]) -> list[str]:
    """dbt selectors that leave out everything built on a source table not written yet: its
    staging model, the marts and tests downstream (``source:ark.<table>+``)."""
    missing = sorted(required_tables(manifest) - set(existing))
    return [f"source:{SOURCE_NAME}.{table}+" for table in missing]


def unbuilt_tests(
    manifest: Mapping[str, Any], selected: Iterable[str], built: Iterable[tuple[str, str]]
) -> list[str]:
    """Names of the dbt tests that cannot run in a build of the ``selected`` models: a test on
    a model neither selected nor built yet (a relationship into a model of a later step, a
    promise over several models). dbt's default (eager) selection runs a test when any of its
    models is selected, and it fails on the missing one ("Table … does not exist"); these run
    once their models exist."""
    chosen, existing = set(selected), {(a.lower(), b.lower()) for a, b in built}
    nodes = manifest.get("nodes", {})

    def ready(unique_id: str) -> bool:
        node = nodes.get(unique_id)
        if node is None or node.get("resource_type") not in ("model", "snapshot", "seed"):
            return True  # sources are checked by exclusions()
        relation = (str(node["schema"]).lower(), str(node.get("alias") or node["name"]).lower())
        return node["name"] in chosen or relation in existing

    def picked(unique_id: str) -> bool:  # what dbt's eager selection goes by
        return nodes.get(unique_id, {}).get("name") in chosen

    tests = [n for n in nodes.values() if n.get("resource_type") == "test"]
    return sorted(
        test["name"]
        for test in tests
        if any(picked(p) for p in test.get("depends_on", {}).get("nodes", []))
        and not all(ready(p) for p in test.get("depends_on", {}).get("nodes", []))
    )


def needs_database(args: Iterable[str]) -> bool:
    """Whether a dbt command line opens the warehouse (everything but parse, ls, docs serve …)."""
    words = [a for a in args if not a.startswith("-")]
    if not words:
        return False
    if words[0] == "docs":
        return words[1:2] == ["generate"]
    return words[0] not in NO_DATABASE_COMMANDS
