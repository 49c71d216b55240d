"""A loopback HTTP endpoint that answers with exactly the bytes a test writes: any status line,
any headers, any body, trickled or cut, so the teacher's and the policy's handling of what a
broken or hostile server sends can be tested byte for byte.

``HostileEndpoint(answer)`` serves ``127.0.0.1`` (a free port) from a thread. For every
request it reads the request (line, headers, ``content-length`` body), records the parsed JSON
body, and writes what ``answer(body, n)`` yields to the socket as it yields it (a generator that
sleeps between chunks trickles), then closes the connection. ``response`` builds a well-formed
HTTP/1.1 response from a status, headers and body bytes. ``Hangup`` accepts every connection and
closes it unanswered (a server that is there and does not answer); ``closed_port_url`` is a port
nothing listens on.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ark_assets.testing.scripted_endpoint import LoopbackServer

Answer = Callable[[dict[str, Any], int], Iterable[bytes]]


def response(status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """``HTTP/1.1 status`` with ``headers``, a ``content-length`` (unless given) and ``body``."""
    lines = [f"HTTP/1.1 {status} Hostile".encode("latin-1")]
    names = {name.lower() for name, _ in headers}
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    if "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"content-length: {len(body)}".encode())
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def completion_body(content: str) -> bytes:
    """A chat-completion envelope around ``content``."""
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "hostile",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    ).encode()


class HostileEndpoint(LoopbackServer):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler()))

    def _record(self, body: dict[str, Any]) -> int:
        with self._lock:
            self.requests.append(body)
            return len(self.requests)

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        endpoint = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                length = 0
                if not self.rfile.readline():
                    return
                while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = json.loads(self.rfile.read(length) or b"{}")
                number = endpoint._record(body)
                try:
                    for chunk in endpoint.answer(body, number):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (deadline, size cap)

        return Handler


class Hangup:
    """A port that accepts every connection and closes it unanswered; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def __enter__(self) -> Hangup:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
