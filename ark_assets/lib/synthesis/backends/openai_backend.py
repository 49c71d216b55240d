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
attempt is counted.
"""

from __future__ import annotations

import copy
import email.utils
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import openai
from pydantic import BaseModel

from ark_assets.lib.synthesis.models import TeacherIdentity
from ark_assets.lib.synthesis.teacher import (
    Completion,
    RejectedRequest,
    TeacherRequest,
    TeacherUnavailable,
    TransientError,
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


def _retry_after(response: Any) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header, if the server sent one."""
    headers = getattr(response, "headers", None) or {}
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


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
    ) -> None:
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
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
        try:
            response = self._client.chat.completions.create(
                model=self._model,
                messages=request.messages,  # type: ignore[arg-type]
                temperature=self._temperature,
                max_tokens=self._max_tokens,
                **extra,
            )
        except openai.APIConnectionError as err:  # timeouts included
            raise self._translate(err) from err
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content if choice else None) or ""
        usage = response.usage
        return Completion(
            text,
            Usage(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            ),
        )

    def _translate(self, err: openai.APIError) -> Exception:
        return translate_error(
            err,
            model=self._model,
            timeout_s=self._timeout_s,
            key_settings="OPENAI_API_KEY and OPENAI_BASE_URL",
            model_settings="ARK_TEACHER_MODEL and OPENAI_BASE_URL",
        )


def translate_error(
    err: openai.APIError,
    *,
    model: str,
    timeout_s: float,
    key_settings: str,
    model_settings: str,
    unavailable: type[Exception] = TeacherUnavailable,
) -> Exception:
    """A caller's view of an OpenAI client error: retry (``TransientError``: 429, 5xx, timeout,
    lost connection), give up on this request (``RejectedRequest``), or stop (``unavailable``:
    credentials refused or model not served; the message names ``key_settings`` or
    ``model_settings`` to check). Shared by the teacher and the student policy."""
    if isinstance(err, openai.APITimeoutError):
        return TransientError(f"no answer within {timeout_s:g} s")
    if isinstance(err, openai.APIConnectionError):
        return TransientError(f"connection failed: {_message(err)}")
    if not isinstance(err, openai.APIStatusError):
        return RejectedRequest(f"{type(err).__name__}: {_message(err)}")
    status = err.status_code
    if status == 429:
        return TransientError("429 rate limited", _retry_after(err.response))
    if status >= 500:
        return TransientError(f"{status} server error", _retry_after(err.response))
    if status in (401, 403):
        return unavailable(f"the endpoint refused the credentials ({status}): check {key_settings}")
    if status == 404:
        return unavailable(
            f"the endpoint does not serve model {model!r} (404): check {model_settings}"
        )
    return RejectedRequest(f"{status} from the server: {_message(err)}")


_FORMATS = ("json_schema", "json_object", "none")


def _message(err: Exception) -> str:
    text = str(getattr(err, "message", None) or err)
    return text if len(text) <= 300 else text[:300] + "…"


def _about_response_format(err: openai.APIStatusError) -> bool:
    text = _message(err).lower()
    return any(word in text for word in ("response_format", "json_schema", "response format"))
