"""The ``teacher`` resource: which model explains the doctor replies, and how hard to push it.

Configured from the environment (``defs/resources.py`` conventions; a set variable is wired as
``dg.EnvVar`` so the UI shows where a value came from, and nothing secret has a default):

- ``ARK_TEACHER_BACKEND``: ``rules`` (default: offline, deterministic, no model) | ``openai`` |
  ``transformers``;
- ``ARK_TEACHER_MODEL``: the endpoint's model name (``openai``) or a local model directory
  (``transformers``);
- ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``: the OpenAI-compatible endpoint and its key (any
  non-empty string for a local vLLM, Ollama or llama.cpp server);
- ``ARK_TEACHER_MAX_CONCURRENCY`` (8), ``ARK_TEACHER_RPM`` (0 = no limit),
  ``ARK_TEACHER_TIMEOUT_S`` (60, a total deadline per call), ``ARK_TEACHER_MAX_ATTEMPTS`` (4),
  ``ARK_TEACHER_MAX_CONNECTION_FAILURES`` (8: calls in a row without an answer that stop the
  run; 0 = never);
- ``ARK_TEACHER_CACHE``: the cache file (default ``<ARK_DATA_DIR>/cache/teacher.sqlite``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

from ark_assets.defs.resources import data_dir, env_setting
from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.cache import TeacherCache
from ark_assets.lib.synthesis.teacher import (
    MAX_CONNECTION_FAILURES,
    Backend,
    RetryPolicy,
    Teacher,
)

BACKENDS = ("rules", "openai", "transformers")


class TeacherResource(dg.ConfigurableResource):
    """The teacher of the Ark loop: backend, limits, retries and the persistent cache."""

    backend: str = Field(default="rules", description=f"One of {', '.join(BACKENDS)}.")
    model: str = Field(
        default="",
        description="openai: the endpoint's model name; transformers: a local model directory.",
    )
    base_url: str = Field(default="", description="openai: the endpoint (empty: api.openai.com).")
    # repr=False: a resolved resource's repr (error messages, debuggers) would print the key.
    api_key: str = Field(
        default="", repr=False, description="openai: the key (from OPENAI_API_KEY)."
    )
    cache_path: str = Field(description="SQLite file of the teacher cache.")
    max_concurrency: int = Field(default=8, description="Requests in flight at most.")
    requests_per_minute: int = Field(default=0, description="Request starts a minute; 0: no limit.")
    timeout_s: int = Field(
        default=60, description="Seconds one call may take, connect to last byte (a deadline)."
    )
    max_attempts: int = Field(default=4, description="Tries per request (retries included).")
    max_connection_failures: int = Field(
        default=MAX_CONNECTION_FAILURES,
        description="openai: calls in a row that get no answer (refused, reset, timed out) "
        "before the run stops with what to check; 0: never stop.",
    )
    temperature: float = Field(default=0.0, description="Sampling temperature (0: greedy).")
    max_tokens: int = Field(default=1024, description="Most tokens in one answer.")

    def build_backend(self) -> Backend:
        if self.backend == "rules":
            return RulesBackend()
        if self.backend == "openai":
            from ark_assets.lib.synthesis.backends.openai_backend import OpenAIBackend

            if not self.model or not self.api_key:
                raise ValueError(
                    "the openai teacher needs ARK_TEACHER_MODEL and OPENAI_API_KEY (any "
                    "non-empty key for a local server) and usually OPENAI_BASE_URL"
                )
            return OpenAIBackend(
                model=self.model,
                api_key=self.api_key,
                base_url=self.base_url or None,
                timeout_s=self.timeout_s,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                max_connection_failures=self.max_connection_failures,
            )
        if self.backend == "transformers":
            from ark_assets.lib.synthesis.backends.transformers_backend import TransformersBackend

            if not self.model:
                raise ValueError("the transformers teacher needs ARK_TEACHER_MODEL (a local path)")
            return TransformersBackend.from_path(self.model, max_new_tokens=self.max_tokens)
        raise ValueError(
            f"unknown teacher backend {self.backend!r}: set ARK_TEACHER_BACKEND to one of "
            f"{', '.join(BACKENDS)}"
        )

    @contextmanager
    def open(self, backend: Backend | None = None) -> Iterator[Teacher]:
        """A teacher on the configured backend (or ``backend``) and the cache, closed after."""
        cache = TeacherCache(Path(self.cache_path))
        built = backend or self.build_backend()
        try:
            yield Teacher(
                built,
                cache,
                retry=RetryPolicy(max_attempts=self.max_attempts),
                max_concurrency=self.max_concurrency,
                requests_per_minute=self.requests_per_minute,
            )
        finally:
            cache.close()
            if (close := getattr(built, "close", None)) is not None:  # openai: pooled connections
                close()


def build_teacher() -> TeacherResource:
    """The teacher for the environment (the offline rules teacher unless configured)."""
    base = data_dir()
    return TeacherResource(
        backend=env_setting("ARK_TEACHER_BACKEND", "rules"),
        model=env_setting("ARK_TEACHER_MODEL", ""),
        base_url=env_setting("OPENAI_BASE_URL", ""),
        api_key=env_setting("OPENAI_API_KEY", ""),
        cache_path=env_setting("ARK_TEACHER_CACHE", str(base / "cache" / "teacher.sqlite")),
        max_concurrency=env_setting("ARK_TEACHER_MAX_CONCURRENCY", 8),
        requests_per_minute=env_setting("ARK_TEACHER_RPM", 0),
        timeout_s=env_setting("ARK_TEACHER_TIMEOUT_S", 60),
        max_attempts=env_setting("ARK_TEACHER_MAX_ATTEMPTS", 4),
        max_connection_failures=env_setting(
            "ARK_TEACHER_MAX_CONNECTION_FAILURES", MAX_CONNECTION_FAILURES
        ),
    )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"teacher": build_teacher()})
