"""The ``openai`` backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp).

Structured outputs: each request carries the output model's JSON schema as a response format,
which the server turns into constrained decoding. Servers differ in the form they accept, so the
backend steps down once per server when a request is rejected naming the response format (any
4xx/5xx whose message mentions it), and keeps the form that worked:
1. ``{"type": "json_schema", ...}`` (OpenAI, vLLM, Ollama, llama.cpp's own server);
2. ``{"type": "json_object", "schema": ...}`` (llama-cpp-python's server);
3. no response format: the schema in the system prompt and the teacher's tolerant
   parse-and-validate.
The client's own retries are off: the teacher retries (backoff, jitter, accounting), so every
attempt is counted. Each call goes through ``endpoint.Endpoint``: a total deadline, a size cap,
any body read safely, and a circuit breaker that stops the run when the server stops answering.
"""

from __future__ import annotations

import copy
import threading
from typing import Any
from urllib.parse import urlsplit

import openai
from pydantic import BaseModel

from ark_assets.lib.synthesis.backends.endpoint import (
    MAX_ANSWER_BYTES,
    Endpoint,
    count,
    not_a_completion,
    translate_error,
)
from ark_assets.lib.synthesis.models import TeacherIdentity
from ark_assets.lib.synthesis.teacher import (
    MAX_CONNECTION_FAILURES,
    Completion,
    TeacherRequest,
    Usage,
)

# JSON-schema keywords that OpenAI's strict structured outputs rejects; the teacher's own
# validation enforces them after parsing.
_UNSUPPORTED = ("default", "minLength", "maxLength", "title")


def strict_schema(output: type[BaseModel]) -> dict[str, Any]:
    """The output's JSON schema in the strict form: closed objects, every property required."""

    def visit(node: Any, names: bool = False) -> Any:
        if isinstance(node, list):
            return [visit(v) for v in node]
        if not isinstance(node, dict):
            return node
        if names:  # a "properties" or "$defs" mapping: its keys are names, not keywords
            return {k: visit(v) for k, v in node.items()}
        node = {
            k: visit(v, names=k in ("properties", "$defs"))
            for k, v in node.items()
            if k not in _UNSUPPORTED
        }
        if isinstance(node.get("properties"), dict):
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
        return node

    schema: dict[str, Any] = visit(copy.deepcopy(output.model_json_schema()))
    return schema


class OpenAIBackend:
    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        max_concurrency: int = 64,
        max_connection_failures: int = MAX_CONNECTION_FAILURES,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._endpoint = Endpoint(
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            max_connection_failures=max_connection_failures,
            max_answer_bytes=max_answer_bytes,
        )
        self._model = model
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._timeout_s = timeout_s
        self._format = 0  # index into _FORMATS: the form the server accepts
        self._schemas: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        host = urlsplit(base_url).hostname if base_url else "api.openai.com"
        self.max_concurrency = max_concurrency
        self.identity = TeacherIdentity(
            backend="openai",
            model=model,
            note=f"LLM teacher ({model}) at an OpenAI-compatible endpoint on {host}",
        )

    def close(self) -> None:
        self._endpoint.close()

    @property
    def response_format(self) -> str:
        """The response-format form this server accepts: json_schema, json_object or none."""
        return _FORMATS[self._format]

    def complete(self, request: TeacherRequest[Any]) -> Completion:
        while True:
            form = self._format
            try:
                return self._create(request, _FORMATS[form])
            except openai.APIStatusError as err:
                if form == len(_FORMATS) - 1 or not _about_response_format(err):
                    raise self._translate(err) from err
                with self._lock:  # step down once, even when many threads saw the rejection
                    self._format = max(self._format, form + 1)

    def _create(self, request: TeacherRequest[Any], form: str) -> Completion:
        name = request.output.__name__
        if name not in self._schemas:
            self._schemas[name] = strict_schema(request.output)
        extra: dict[str, Any] = {}
        if form == "json_schema":
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": self._schemas[name], "strict": True},
            }
        elif form == "json_object":
            extra["response_format"] = {"type": "json_object", "schema": self._schemas[name]}
        answer = self._endpoint.call(
            lambda client: client.chat.completions.with_streaming_response.create(
                model=self._model,
                messages=request.messages,  # type: ignore[arg-type]
                temperature=self._temperature,
                max_tokens=self._max_tokens,
                **extra,
            )
        )
        return _completion(answer)

    def _translate(self, err: openai.APIError) -> Exception:
        return translate_error(
            err,
            model=self._model,
            timeout_s=self._timeout_s,
            key_settings="OPENAI_API_KEY and OPENAI_BASE_URL",
            model_settings="ARK_TEACHER_MODEL and OPENAI_BASE_URL",
        )


def _completion(answer: dict[str, Any]) -> Completion:
    """The assistant message and token usage of a chat-completion object; a ``TransientError``
    when ``answer`` is not one (a null content is an empty answer, as OpenAI sends refusals)."""
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(content, str | None):
        raise not_a_completion("chat completion", answer)
    usage = answer.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        content or "",
        Usage(count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))),
    )


_FORMATS = ("json_schema", "json_object", "none")


def _about_response_format(err: openai.APIStatusError) -> bool:
    text = str(err.message)[:2000].lower()
    return any(word in text for word in ("response_format", "json_schema", "response format"))
