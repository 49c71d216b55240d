"""A scripted OpenAI-compatible chat endpoint on loopback, for fault injection and benchmarks.

``ScriptedEndpoint(script)`` serves ``POST /v1/chat/completions`` on ``127.0.0.1`` (a free
port) from a thread; ``script(body, n)`` decides each answer: a status, a message content or a
raw body, headers (e.g. ``Retry-After``) and a delay (timeouts, latency). It records every
request body and the peak number of requests in flight, so tests can assert retries and the
concurrency cap. ``canned`` answers every Ark stage with a valid, deterministic object.
"""

from __future__ import annotations

import hashlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

_STAGES = (
    "RetrievalRequest",
    "RefinedResult",
    "ReasoningCheck",
    "AskCheck",
    "Response",
    "Entities",
)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message of a 200 answer
    body: str | None = None  # a raw body instead (errors, broken JSON envelopes)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Script = Callable[[dict[str, Any], int], Reply]


def output_name(body: dict[str, Any]) -> str:
    """Which teacher output a request asks for: the response format's name, else the schema
    title in the system prompt (servers without structured outputs)."""
    response_format = body.get("response_format") or {}
    name = (response_format.get("json_schema") or {}).get("name")
    if name:
        return str(name)
    system = " ".join(m["content"] for m in body.get("messages", []) if m["role"] == "system")
    return next((n for n in _STAGES if f'"title":"{n}"' in system), "")


def canned(body: dict[str, Any], n: int) -> Reply:
    """A valid answer for every stage, derived from the request only (deterministic)."""
    user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
    tag = hashlib.sha256(user.encode()).hexdigest()[:6]
    lines = [line for line in user.splitlines() if line.strip()]
    topic = lines[1][-40:] if len(lines) > 1 else user[:40]
    answers: dict[str, dict[str, Any]] = {
        "RetrievalRequest": {"reasoning": "look up the complaint", "queries": [f"{topic} {tag}"]},
        "RefinedResult": {"refined_result": f"The documents discuss {topic}."},
        "ReasoningCheck": {"reasoning": "the reply needs more than this", "deducible": False},
        "AskCheck": {"reasoning": "the reply gives advice", "is_asking": False},
        "Response": {
            "reasoning": "the dialogue suffices to advise",
            "is_asking": False,
            "entities": {},
            "text": "advice",
        },
        "Entities": {"concept": [topic[:4]]},
    }
    return Reply(content=json.dumps(answers.get(output_name(body), {})))


class LoopbackServer:
    """A socketserver on 127.0.0.1 served from a thread while the ``with`` block runs; its
    ``base_url`` is the OpenAI-style ``/v1`` root."""

    def serve(self, server: socketserver.ThreadingTCPServer | ThreadingHTTPServer) -> None:
        self._server = server
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class ScriptedEndpoint(LoopbackServer):
    def __init__(self, script: Script = canned, latency_s: float = 0.0) -> None:
        self.script = script
        self.latency_s = latency_s
        self.requests: list[dict[str, Any]] = []
        self.peak_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self.serve(ThreadingHTTPServer(("127.0.0.1", 0), self._handler()))

    def _answer(self, body: dict[str, Any]) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append(body)
            number = len(self.requests)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            reply = self.script(body, number)
            time.sleep(self.latency_s + reply.delay_s)
        finally:
            with self._lock:
                self._in_flight -= 1
        return reply, number

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm and
                # the client's delayed ACK add ~40 ms to every answer.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                reply, number = endpoint._answer(body)
                payload = reply.body if reply.body is not None else _envelope(reply, body, number)
                data = payload.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler


def _envelope(reply: Reply, body: dict[str, Any], number: int) -> str:
    if reply.status != 200:
        return json.dumps({"error": {"message": f"scripted {reply.status}", "type": "scripted"}})
    content = reply.content or ""
    prompt_chars = sum(len(m["content"]) for m in body.get("messages", []))
    return json.dumps(
        {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "scripted"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            # Rough token counts (4 characters a token) so accounting has numbers to add up.
            "usage": {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": len(content) // 4,
                "total_tokens": prompt_chars // 4 + len(content) // 4,
            },
        }
    )
