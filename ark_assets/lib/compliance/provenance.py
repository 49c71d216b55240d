"""What an artifact was built with: the git commit of the code and the versions of the packages
that shape its content, taken when it is built (the training card, materialization metadata) so
an audit reports the build's environment, not the auditor's.

``git`` is None when the package does not run from a git checkout (an installed wheel): the
package version then names the code. ``dirty`` says the checkout had uncommitted changes to
tracked files, so the commit alone does not reproduce it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

# The key under which the training card and materialization metadata hold build_environment().
BUILT_WITH = "built_with"
# The packages whose version changes what an artifact holds: the platform itself, the
# orchestrator and table engines, the vector store, the training stack, the PHI detectors.
PACKAGES = (
    "ark-assets",
    "dagster",
    "polars",
    "duckdb",
    "chromadb",
    "torch",
    "transformers",
    "peft",
    "trl",
    "python-stdnum",
    "phonenumbers",
)
_PACKAGE_DIR = Path(__file__).resolve().parents[2]  # ark_assets/


@functools.cache
def build_environment() -> dict[str, Any]:
    """``{"git": {"commit", "dirty"} | None, "python", "packages": {name: version | None}}``.

    Taken once per process: a process runs the code it imported, whatever happens to the
    checkout while it runs (each Dagster step and each trainer is its own process)."""
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "git": git_state(_PACKAGE_DIR),
        "python": platform.python_version(),
        "packages": packages,
    }


def git_state(package_dir: Path) -> dict[str, Any] | None:
    """The commit of the checkout ``package_dir`` is tracked in, and whether tracked files have
    uncommitted changes; None outside a checkout. A package installed into a virtual
    environment that happens to sit inside some repository is not tracked by it, so it gets
    None rather than that repository's commit."""
    try:
        tracked = _git(package_dir, "ls-files", "--error-unmatch", "__init__.py")
        head = _git(package_dir, "rev-parse", "HEAD")
        status = _git(package_dir, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if tracked.returncode or head.returncode or status.returncode:
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False
    )
