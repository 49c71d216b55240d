"""What an audit reads besides Dagster's instance: the warehouse and the landing areas
(``AuditStores``), and the sources manifest that licences are looked up in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from ark_assets.defs.knowledge.resources import KbInbox
from ark_assets.defs.resources import DialogueInbox, Warehouse

MANIFEST_ENV = "ARK_SOURCES_MANIFEST"


@dataclass(frozen=True)
class AuditStores:
    """What an audit reads besides the instance: the warehouse and the landing areas."""

    warehouse: Warehouse
    inbox: DialogueInbox | None = None
    kb_inbox: KbInbox | None = None

    @classmethod
    def of(cls, resources: Mapping[str, Any]) -> AuditStores:
        return cls(resources["warehouse"], resources.get("inbox"), resources.get("kb_inbox"))


def default_manifest_path() -> Path:
    """``$ARK_SOURCES_MANIFEST``, or the manifest of the bundled samples."""
    configured = os.environ.get(MANIFEST_ENV)
    if configured:
        return Path(configured)
    return Path(str(package_files.files("ark_assets") / "samples" / "sources.yaml"))
