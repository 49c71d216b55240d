"""Every layer's resources rooted in a throwaway data directory, whatever the environment says.

The builders in ``defs/`` read only the environment; tests and benchmarks get their isolated,
offline set here: the builders run with ``ARK_DATA_DIR`` pointed at ``root`` and every other
``ARK_*`` / ``OPENAI_*`` variable hidden, then the embedder is swapped for the deterministic
``hashing`` backend (the demo default, multilingual-e5, is slower and not what tests measure).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_PREFIXES = ("ARK_", "OPENAI_")


@contextmanager
def data_dir_environment(root: Path) -> Iterator[None]:
    """``ARK_DATA_DIR=root`` and no other platform variable, for the duration of the block."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(_PREFIXES)}
    for name in saved:
        del os.environ[name]
    os.environ["ARK_DATA_DIR"] = str(root)
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith(_PREFIXES)]:
            del os.environ[name]
        os.environ.update(saved)


def rooted_resources(root: Path) -> dict[str, Any]:
    """The resources of every layer under ``root``: warehouse, inboxes, hashing embedder, rules
    teacher, SmolLM2 student, subprocess trainer, in-process transformers policy, dbt."""
    from ark_assets.defs.agent.resources import build_policy
    from ark_assets.defs.evaluation.resources import build_evaluation_resources
    from ark_assets.defs.knowledge.resources import EmbedderResource, build_knowledge_resources
    from ark_assets.defs.resources import build_resources
    from ark_assets.defs.synthesis.resources import build_teacher
    from ark_assets.defs.training.resources import build_training_resources
    from ark_assets.defs.warehouse.resources import build_warehouse_resources

    with data_dir_environment(root):
        resources = {
            **build_resources(),
            **build_knowledge_resources(),
            "teacher": build_teacher(),
            **build_training_resources(),
            "policy": build_policy(),
            **build_evaluation_resources(),
            **build_warehouse_resources(),
        }
    resources["embedder"] = EmbedderResource(backend="hashing")
    return resources
