"""Small loopback HTTP servers for tests and the sandbox's checks: a quiet static file server
(inputs standing in for presigned URLs) and a receiver that records webhook POSTs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature is fixed
        pass


class Receiver(BaseHTTPRequestHandler):
    """Records POSTs; answers with the next status in `statuses` (then 200). Subclass it per
    test with fresh lists: `type("Receiver", (Receiver,), {"received": [], "statuses": []})`."""

    received: list[dict[str, Any]]
    statuses: list[int] = []  # subclasses bring their own list; an empty one is never mutated

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status = self.statuses.pop(0) if self.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def serve(handler: Callable[..., Any]) -> ThreadingHTTPServer:
    """Serve `handler` on a free loopback port from a daemon thread."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return srv


def loopback_url(srv: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/{path}"


def wait_until(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met before the deadline")
