"""Running assets from code (the demo, ``ark forget --rebuild``, benchmarks and tests): every
asset and check as ``dg.materialize`` takes them, and the console settings such runs use."""

from __future__ import annotations

from typing import Any

import dagster as dg

# Step-by-step event logs belong in the UI (`make ui`); the terminal gets progress.
QUIET_LOGGERS = {"console": {"config": {"log_level": "WARNING"}}}


def runnable(definitions: dg.Definitions) -> list[Any]:
    """Every asset and check of the definitions, as ``dg.materialize`` takes them."""
    return [
        *(a for a in definitions.assets or [] if isinstance(a, dg.AssetsDefinition)),
        *(definitions.asset_checks or []),
    ]
