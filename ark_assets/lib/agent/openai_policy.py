"""The student behind an OpenAI-compatible server (vLLM, llama.cpp, SGLang): ``OpenAIPolicy``.

Prompts go to the **completions** endpoint, already rendered with our chat template, so the
server's own template never applies. The requests of one ``generate`` call run concurrently
(at most ``max_concurrency`` in flight, starts paced to ``requests_per_minute``) with the
teacher's retry policy: transient errors (429, 5xx, timeouts, lost connections) are retried
with backoff; a request that fails every attempt, or that the server rejects, comes back as a
``Generation`` with ``finish_reason="error"`` for the loop to record; refused credentials, an
unknown model, or ``max_connection_failures`` calls in a row without an answer (the circuit
breaker) raise ``PolicyUnavailable``, since no request could succeed. Calls go through the
teacher's ``Endpoint`` (lib/synthesis/backends/endpoint.py): ``timeout_s`` is a total deadline,
answers are size-capped, and any body that is not a completion is a retried, counted error.

A constrained request (the loop's forced Ask or Tell) sends its JSON schema in the request body
under the field the server understands, chosen by ``constraint_param``:

- ``grammar`` (default): the schema converted to a GBNF grammar with llama-cpp-python's own
  converter; llama-cpp-python's server (the one the tests start) reads nothing else on
  /v1/completions and silently drops unknown fields. llama.cpp's ``llama-server`` takes it too.
  Needs ``llama-cpp-python`` installed where the policy runs.
- ``json_schema``: the schema itself, for llama.cpp's ``llama-server``.
- ``structured_outputs``: ``{"json": schema}``, for vLLM 0.10.2 and later.
- ``guided_json``: the schema itself, for vLLM before 0.12 (0.12 removed the field).
- ``none``: the server cannot constrain; the request goes out unconstrained (the prompt still
  ends in ``<tool_call>``), and the loop's parser and retries deal with what comes back.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import openai

from ark_assets.lib.agent.policy import STOP_STRINGS, Generation, GenerationRequest, PolicyIdentity
from ark_assets.lib.synthesis.backends.endpoint import (
    Endpoint,
    count,
    not_a_completion,
    translate_error,
)
from ark_assets.lib.synthesis.loop import parallel_map
from ark_assets.lib.synthesis.teacher import (
    MAX_CONNECTION_FAILURES,
    Pacer,
    RejectedRequest,
    RetryPolicy,
    TransientError,
)

CONSTRAINT_PARAMS: Final = ("grammar", "json_schema", "structured_outputs", "guided_json", "none")


class PolicyUnavailable(RuntimeError):
    """The student's server cannot serve any request (bad key, unknown model): fix the
    configuration (ARK_POLICY_BASE_URL, ARK_POLICY_MODEL, ARK_POLICY_API_KEY)."""


class OpenAIPolicy:
    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str = "local",
        adapter: str = "",
        constraint_param: str = "grammar",
        max_concurrency: int = 8,
        requests_per_minute: float = 0,
        timeout_s: float = 120.0,
        max_connection_failures: int = MAX_CONNECTION_FAILURES,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        """``model`` is the served name: the base model, or with vLLM ``--lora-modules
        name=path`` the adapter's name. ``adapter`` says what that name stands for (the
        adapter directory or its digest); it is recorded in the identity, never sent."""
        if constraint_param not in CONSTRAINT_PARAMS:
            raise ValueError(
                f"constraint_param {constraint_param!r} is not one of "
                f"{', '.join(CONSTRAINT_PARAMS)}: set ARK_POLICY_CONSTRAINT to what the server "
                "accepts (see ark_assets/lib/agent/openai_policy.py)"
            )
        self._endpoint = Endpoint(
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_connection_failures=max_connection_failures,
            url_setting="ARK_POLICY_BASE_URL",
            breaker_setting="ARK_POLICY_MAX_CONNECTION_FAILURES",
            unavailable=PolicyUnavailable,
        )
        self._model = model
        self._timeout_s = timeout_s
        self.constraint_param = constraint_param
        self.concurrency = max(1, max_concurrency)
        self.retry = retry or RetryPolicy()
        self.identity = PolicyIdentity("openai", model, adapter)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pacer = Pacer(requests_per_minute)
        self._sleep = sleep
        self._rng = random.Random(seed)  # backoff jitter only; generations never depend on it
        self._rng_lock = threading.Lock()
        self._grammars: dict[str, str] = {}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return parallel_map(self._attempts, requests, self.concurrency)

    def _attempts(self, request: GenerationRequest) -> Generation:
        error: TransientError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            if error is not None:
                with self._rng_lock:
                    pause = self.retry.delay(attempt - 1, error.retry_after, self._rng)
                self._sleep(pause)
            try:
                return self._call(request)
            except TransientError as err:
                error = err
            except RejectedRequest as err:
                return Generation("", finish_reason="error", error=f"rejected: {err}")
        return Generation(
            "",
            finish_reason="error",
            error=f"failed {self.retry.max_attempts} attempts: {error}",
        )

    def close(self) -> None:
        self._endpoint.close()

    def _call(self, request: GenerationRequest) -> Generation:
        self._pacer.wait(self._sleep)
        decoding = request.decoding
        constraint = self._constraint(request.constraint)  # here, not on the event loop
        try:
            with self._slots:
                answer = self._endpoint.call(
                    lambda client: client.completions.with_streaming_response.create(
                        model=self._model,
                        prompt=request.prompt,
                        max_tokens=decoding.max_new_tokens,
                        temperature=decoding.temperature,
                        top_p=decoding.top_p,
                        seed=decoding.seed,
                        stop=list(STOP_STRINGS),
                        logprobs=1,
                        extra_body=constraint,
                    )
                )
        except openai.APIStatusError as err:
            raise translate_error(
                err,
                model=self._model,
                timeout_s=self._timeout_s,
                key_settings="ARK_POLICY_API_KEY and ARK_POLICY_BASE_URL",
                model_settings="ARK_POLICY_MODEL and ARK_POLICY_BASE_URL",
                unavailable=PolicyUnavailable,
            ) from err
        return _generation(answer)

    def _constraint(self, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        """The request-body field that carries ``schema`` to this server."""
        if schema is None or self.constraint_param == "none":
            return None
        if self.constraint_param == "grammar":
            return {"grammar": self._grammar(schema)}
        if self.constraint_param == "structured_outputs":
            return {"structured_outputs": {"json": schema}}
        return {self.constraint_param: schema}

    def _grammar(self, schema: dict[str, Any]) -> str:
        text = json.dumps(schema, sort_keys=True)
        if text not in self._grammars:  # a handful of schemas (the allowed-tool sets) per run
            try:
                from llama_cpp.llama_grammar import json_schema_to_gbnf
            except ImportError as err:
                raise PolicyUnavailable(
                    "constraint_param 'grammar' converts the schema with llama-cpp-python: "
                    "install it, or set ARK_POLICY_CONSTRAINT to what the server accepts"
                ) from err
            self._grammars[text] = json_schema_to_gbnf(text)
        return self._grammars[text]


def _generation(answer: dict[str, Any]) -> Generation:
    """The first choice of a completions object: text, log-probabilities, usage; a
    ``RejectedRequest`` without a choice, a ``TransientError`` when ``answer`` is no completion."""
    choices = answer.get("choices")
    if isinstance(choices, list) and not choices:
        raise RejectedRequest("the server answered without a choice")
    choice = choices[0] if isinstance(choices, list) else None
    text = choice.get("text") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(text, str):
        raise not_a_completion("completion", answer)
    logprobs = choice.get("logprobs")
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    values = values if isinstance(values, list) else []
    usage = answer.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Generation(
        text,
        token_logprobs=[
            float(p) for p in values if isinstance(p, int | float) and not isinstance(p, bool)
        ],
        prompt_tokens=count(usage.get("prompt_tokens")),
        completion_tokens=count(usage.get("completion_tokens")),
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
    )
