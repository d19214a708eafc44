"""A real HTTP server on a local socket that records what alerts and pings it receives."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    url: str
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0  # answer this many requests with 503 first
    delay_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def payloads(self) -> list[Any]:
        return [r.json() for r in self.received if r.headers.get("Content-Type") == "application/json"]

    def wait_for(self, count: int, timeout_s: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} requests, got {len(self.received)}: {self.paths()}")


@contextmanager
def webhook_server() -> Iterator[Recorder]:
    recorder = Recorder(url="")
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with recorder._lock:
                calls["n"] += 1
                failing = calls["n"] <= recorder.fail_first
            if recorder.delay_s:
                time.sleep(recorder.delay_s)
            if not failing:
                recorder.received.append(Received(self.path, body, dict(self.headers)))
            with contextlib.suppress(OSError):  # the client may have given up (a timeout test)
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
