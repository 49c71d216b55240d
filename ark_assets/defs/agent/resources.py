"""The ``policy`` resource: which student backend the agent loop runs on.

``transformers`` (default) loads the base model + LoRA adapter in-process (CPU or CUDA);
``openai`` sends our rendered prompts to any OpenAI-compatible completions server that serves
the student (vLLM with ``--enable-lora``, llama.cpp, SGLang): how inference outgrows one
machine (docs/scaling.md). Nothing secret has a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from ark_assets.defs.resources import env_setting

if TYPE_CHECKING:
    from ark_assets.lib.agent.policy import Policy


class PolicyResource(dg.ConfigurableResource):
    """The student behind the agent loop."""

    backend: str = Field(default="transformers", description="transformers | openai")
    device: str = Field(default="", description="transformers: cpu, cuda (default: auto).")
    base_url: str = Field(default="", description="openai: the server's /v1 URL.")
    model: str = Field(default="", description="openai: the served model or adapter name.")
    api_key: str = Field(default="", description="openai: key, if the server wants one.")
    max_concurrency: int = Field(default=8, description="openai: requests in flight.")
    requests_per_minute: int = Field(default=0, description="openai: pace (0: unpaced).")
    max_connection_failures: int = Field(
        default=8,
        description="openai: calls in a row with no answer before the run stops (0: never).",
    )
    constraint: str = Field(
        default="grammar",
        description="openai: how the server takes the tool-call schema: grammar (GBNF, "
        "llama-cpp-python's server), json_schema (llama.cpp's llama-server), "
        "structured_outputs (vLLM ≥ 0.10.2), guided_json (vLLM < 0.12), none (it cannot).",
    )

    def open(self, base_model: Path, adapter: Path | None) -> Policy:
        """A policy for ``base_model`` (+ ``adapter``) on the configured backend."""
        if self.backend == "transformers":
            from ark_assets.lib.agent.transformers_policy import TransformersPolicy

            return TransformersPolicy.load(base_model, adapter, device=self.device or None)
        if self.backend == "openai":
            from ark_assets.lib.agent.openai_policy import OpenAIPolicy

            return OpenAIPolicy(
                base_url=self.base_url,
                model=self.model,
                api_key=self.api_key or "none",
                adapter=str(adapter or ""),
                max_concurrency=self.max_concurrency,
                requests_per_minute=self.requests_per_minute,
                constraint_param=self.constraint,
                max_connection_failures=self.max_connection_failures,
            )
        raise ValueError(
            f"unknown policy backend {self.backend!r}: set ARK_POLICY_BACKEND to "
            "transformers or openai"
        )


def build_policy() -> PolicyResource:
    """The policy for the environment (in-process transformers unless configured)."""
    return PolicyResource(
        backend=env_setting("ARK_POLICY_BACKEND", "transformers"),
        device=env_setting("ARK_POLICY_DEVICE", ""),
        base_url=env_setting("ARK_POLICY_BASE_URL", ""),
        model=env_setting("ARK_POLICY_MODEL", ""),
        api_key=env_setting("ARK_POLICY_API_KEY", ""),
        max_concurrency=env_setting("ARK_POLICY_MAX_CONCURRENCY", 8),
        requests_per_minute=env_setting("ARK_POLICY_RPM", 0),
        constraint=env_setting("ARK_POLICY_CONSTRAINT", "grammar"),
        max_connection_failures=env_setting("ARK_POLICY_MAX_CONNECTION_FAILURES", 8),
    )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"policy": build_policy()})
