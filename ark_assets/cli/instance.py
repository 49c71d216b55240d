"""The Dagster instance the commands use: ``$DAGSTER_HOME``, by default ``data/dagster_home``
(what ``make demo`` and ``make ui`` use), so a command run outside make finds the same runs."""

from __future__ import annotations

import os
from pathlib import Path

from ark_assets.defs.resources import data_dir


def dagster_home(create: bool = False) -> Path:
    os.environ.setdefault("DAGSTER_HOME", str(data_dir() / "dagster_home"))
    home = Path(os.environ["DAGSTER_HOME"])
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home
