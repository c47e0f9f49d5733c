"""Local stand-ins for alert receivers on 127.0.0.1: a JSON webhook and Telegram's Bot API.

Each records what it accepted (with the raw request, to check no secret leaks into a
body) and can be switched to answer 500 or to hang, to play a channel that is down.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "fail", "hang"]


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    raw: bytes


@dataclass
class Receiver:
    """Base: ``received`` holds accepted requests; ``attempts`` counts every request."""

    mode: Mode = "ok"
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    token: str = ""  # telegram only: the bot token the path must carry
    fail_status: int = 500  # the answer while ``mode`` is "fail"
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        if mode != "hang":
            self._release.set()
        else:
            self._release.clear()

    def bodies(self) -> list[dict[str, Any]]:
        with self._cond:
            return [r.body for r in self.received]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                bodies = [r.body for r in self.received]
                if predicate(bodies):
                    return bodies
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"receiver: condition not met in {timeout} s: {bodies}")
                self._cond.wait(min(remaining, 0.2))

    def accept(self, path: str, raw: bytes) -> tuple[int, bytes]:
        with self._cond:
            self.attempts += 1
        if self.mode == "hang":
            self._release.wait(60)
        if self.mode == "fail":
            return self.fail_status, b'{"error": "down"}'
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, b'{"error": "not json"}'
        status, answer = self.answer(path, body)
        if status == 200:
            with self._cond:
                self.received.append(Received(path, body, raw))
                self._cond.notify_all()
        return status, answer

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        return 200, b'{"ok": true}'


class TelegramReceiver(Receiver):
    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if path != f"/bot{self.token}/sendMessage":
            return 404, b'{"ok": false, "error_code": 404, "description": "Not Found"}'
        if "chat_id" not in body or not body.get("text"):
            return 400, b'{"ok": false, "error_code": 400}'
        return 200, json.dumps(
            {"ok": True, "result": {"message_id": len(self.received) + 1}}
        ).encode()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            status, answer = receiver.accept(self.path, raw)
            with contextlib.suppress(OSError):  # the client may have timed out and gone
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextlib.contextmanager
def serve(receiver: Receiver, *, port: int = 0) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.set_mode("ok")  # release hanging requests
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
