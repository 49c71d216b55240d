"""The agent outside Dagster: the environment's resources resolved into one ``AgentLoop``
(``ark chat``, ``ark serve``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import dagster as dg

from ark_assets.lib.agent.loop import AgentLoop, LoopSettings


@contextmanager
def open_agent(
    adapter: Path | None,
    *,
    base_model: Path | None = None,
    policy_url: str | None = None,
    policy_model: str | None = None,
    settings: LoopSettings | None = None,
) -> Iterator[AgentLoop]:
    """The loop over the configured policy (or the server at ``policy_url``), the knowledge
    base index and the teacher that condenses retrieved documents."""
    from transformers import AutoTokenizer

    from ark_assets.defs.agent.resources import build_policy
    from ark_assets.defs.knowledge.resources import build_knowledge_resources
    from ark_assets.defs.synthesis.resources import build_teacher
    from ark_assets.defs.training.resources import build_training_resources

    policy = build_policy()
    if policy_url:
        policy = policy.model_copy(
            update={"backend": "openai", "base_url": policy_url, "model": policy_model or ""}
        )
    configured = {
        **build_knowledge_resources(),
        **build_training_resources(),
        "teacher": build_teacher(),
        "policy": policy,
    }
    with dg.build_resources(configured) as built:
        model_dir = base_model or built.base_model.local_path()
        if not Path(model_dir).exists():
            raise SystemExit(
                f"no student checkpoint at {model_dir}: materialize base_model (make demo) "
                "or pass --base-model"
            )
        student = built.policy.open(Path(model_dir), adapter)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        retriever = built.vector_store.index(built.embedder).retriever()
        with built.teacher.open() as teacher:
            yield AgentLoop(student, tokenizer, retriever, teacher, settings or LoopSettings())


def open_agent_for(
    args: argparse.Namespace, settings: LoopSettings
) -> AbstractContextManager[AgentLoop]:
    """``open_agent`` with the options ``ark chat``, ``ark serve`` and ``ark eval`` share."""
    return open_agent(
        args.adapter,
        base_model=args.base_model,
        policy_url=args.policy_url,
        policy_model=args.policy_model,
        settings=settings,
    )
