"""`motionrelay listen`: receive this tenant's job notifications on loopback, like `stripe listen`.

It starts an HTTP receiver on 127.0.0.1, registers nothing anywhere, and prints the URL to
give as a job's `webhook_url` (the local stack takes plain-http loopback URLs; AWS does not).
Each delivery's Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) is checked with the tenant's secret, read from `GET /v1/webhook-secret`
(and read again once if a signature does not match: the secret may have been rotated). One
line per event goes to stdout:

    17:10:01  job.succeeded  job_1a1feafbe0f1a596...  succeeded  verified  msg_job_..._succeeded

A verified delivery is answered 204, anything else 401 (so the notifier retries it, as it would
with a real receiver). `--forward-to URL` re-posts each verified event, body and webhook-*
headers unchanged, to a local app, which can verify it with the same secret.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

import httpx

from motionrelay_cli.api import Api, is_loopback

MAX_BODY_BYTES = 1024 * 1024
REFRESH_AFTER_SECONDS = 2.0  # re-read the secret on a mismatch at most this often
WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class Listener:
    """The receiver; `serve_forever()` in the foreground or `start()` in a thread."""

    def __init__(self, api: Api, out: TextIO, err: TextIO, *, port: int = 0, forward_to: str | None = None,
                 json_output: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.api, self.out, self.err = api, out, err
        self.forward_to = forward_to
        self.json_output = json_output
        self.clock = clock
        self.events: list[dict[str, Any]] = []  # what was received: for tests and --json
        self._secret: str | None = None
        self._secret_at = float("-inf")
        self._lock = threading.Lock()
        self._forward = httpx.Client(timeout=30, trust_env=not is_loopback(forward_to or ""))
        handler = type("_Handler", (_Handler,), {"listener": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def secret(self, *, refresh: bool = False) -> str:
        with self._lock:
            if self._secret is None or (refresh and self.clock() - self._secret_at >= REFRESH_AFTER_SECONDS):
                self._secret = str(self.api.request("GET", "/v1/webhook-secret")["secret"])
                self._secret_at = self.clock()
            return self._secret

    def verify(self, body: bytes, headers: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
        """(the event, "verified") or (the body if it is JSON, why it is not verified)."""
        from standardwebhooks import Webhook
        from standardwebhooks.webhooks import WebhookVerificationError

        missing = [h for h in WEBHOOK_HEADERS if not headers.get(h)]
        if missing:
            return _json(body), f"not verified: no {', '.join(missing)} header"
        wanted = {h: headers[h] for h in WEBHOOK_HEADERS}
        for refresh in (False, True):
            try:
                return Webhook(self.secret(refresh=refresh)).verify(body, wanted), "verified"
            except WebhookVerificationError as exc:
                reason = str(exc) or "signature mismatch"
        return _json(body), f"NOT verified: {reason}"

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        event, verdict = self.verify(body, headers)
        data = (event or {}).get("data") if isinstance(event, dict) else None
        data = data if isinstance(data, dict) else {}
        kind = (event or {}).get("type", "?") if isinstance(event, dict) else "?"
        line = (f"{time.strftime('%H:%M:%S')}  {kind}  {data.get('id', '?')}  {data.get('status', '?')}  "
                f"{verdict}  {headers.get('webhook-id', '-')}")
        verified = verdict == "verified"
        with self._lock:
            self.events.append({"event": event, "verified": verified, "headers": headers})
            print(json.dumps(event) if self.json_output and verified else line, file=self.out, flush=True)
        if verified and self.forward_to:
            self._forward_event(body, headers)
        return 204 if verified else 401

    def _forward_event(self, body: bytes, headers: dict[str, str]) -> None:
        sent = {h: headers[h] for h in WEBHOOK_HEADERS} | {"content-type": "application/json"}
        try:
            status = self._forward.post(self.forward_to or "", content=body, headers=sent).status_code
            note = f"  -> forwarded to {self.forward_to}: {status}"
        except httpx.HTTPError as exc:
            note = f"  -> forwarding to {self.forward_to} failed: {exc or type(exc).__name__}"
        print(note, file=self.err, flush=True)

    def start(self) -> Listener:
        self._thread = threading.Thread(target=self.server.serve_forever, name="motionrelay-listen",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._forward.close()


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class _Handler(BaseHTTPRequestHandler):
    listener: Listener
    server_version = "motionrelay-listen"

    def do_POST(self) -> None:  # noqa: N802 - the base class's naming
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_response(413)
            self.end_headers()
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status = self.listener.receive(body, headers)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per event is printed by the listener itself


def run(api: Api, out: TextIO, err: TextIO, *, port: int, forward_to: str | None, json_output: bool) -> int:
    listener = Listener(api, out, err, port=port, forward_to=forward_to, json_output=json_output)
    try:
        listener.secret()  # fail now (401, unreachable) rather than at the first event
        print(f"listening for {api.base_url}'s notifications on {listener.url}\n"
              f"use it as webhook_url, e.g.: motionrelay submit IMAGE VIDEO --webhook-url {listener.url}",
              file=err, flush=True)
        if not is_loopback(api.base_url):
            print("note: a deployed API cannot reach this loopback URL (and refuses http:// webhook "
                  "URLs); this works with the local stack (`make dev`)", file=err, flush=True)
        if forward_to:
            print(f"forwarding verified events to {forward_to}", file=err, flush=True)
        print("Ctrl-C stops.", file=err, flush=True)
        listener.serve_forever()
    finally:
        listener.close()
    return 0
