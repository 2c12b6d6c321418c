"""`motionrelay listen`: a loopback receiver that verifies Standard Webhooks signatures with the
tenant's secret (from the API), prints one line per event and forwards verified ones."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks import Webhook

from motionrelay_cli.api import Api
from motionrelay_cli.listen import Listener

OLD = "whsec_" + "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZA=="
NEW = "whsec_" + "bmV3LXNlY3JldC1uZXctc2VjcmV0LW5ldw=="


def signed(secret: str, job_id: str = "job_1", status: str = "succeeded") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": f"job.{status}", "timestamp": "2026-12-02T17:00:00Z",
                       "data": {"id": job_id, "status": status}})
    msg_id, now = f"msg_{job_id}_{status}", datetime.now(UTC)
    headers = {"content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=now, data=body)}
    return body.encode(), headers


@pytest.fixture
def secrets_api():
    """The API's GET /v1/webhook-secret; `current` is what it answers now."""
    state = {"current": NEW, "reads": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/webhook-secret"
        assert request.headers["authorization"] == "Bearer mr_k"
        state["reads"] += 1
        return httpx.Response(200, json={"secret": state["current"], "created_at": "2026-12-02T17:00:00Z"})

    api = Api("http://127.0.0.1:3000", "mr_k", transport=httpx.MockTransport(handler))
    yield api, state
    api.close()


@pytest.fixture
def listening(secrets_api):
    api, state = secrets_api
    out, err = io.StringIO(), io.StringIO()
    listener = Listener(api, out, err).start()
    yield listener, out, state
    listener.close()


def post(listener: Listener, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(listener.url, content=body, headers=headers, trust_env=False).status_code


def test_a_signed_event_is_verified_and_printed_in_one_line(listening):
    listener, out, _ = listening
    assert listener.url.startswith("http://127.0.0.1:")
    assert post(listener, *signed(NEW)) == 204
    line = out.getvalue().strip()
    assert line.split()[1:5] == ["job.succeeded", "job_1", "succeeded", "verified"]
    assert line.endswith("msg_job_1_succeeded")


def test_a_tampered_or_unsigned_event_is_refused_and_said_so(listening):
    listener, out, _ = listening
    body, headers = signed(NEW)
    assert post(listener, body.replace(b"succeeded", b"failed"), headers) == 401
    assert post(listener, body, {"content-type": "application/json"}) == 401
    lines = out.getvalue().splitlines()
    assert "NOT verified" in lines[0] and "not verified: no webhook-id" in lines[1]
    assert [e["verified"] for e in listener.events] == [False, False]


def test_a_rotated_secret_is_read_again_once(listening):
    listener, out, state = listening
    state["current"] = OLD
    assert listener.secret() == OLD  # the listener started before the rotation
    state["current"] = NEW
    listener._secret_at = float("-inf")  # the last read is old enough to refresh
    assert post(listener, *signed(NEW)) == 204 and "verified" in out.getvalue()
    assert state["reads"] == 2


def test_verified_events_are_forwarded_with_their_signature(secrets_api):
    api, _ = secrets_api
    got: list[tuple[bytes, dict[str, str]]] = []

    class App(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append((self.rfile.read(int(self.headers["Content-Length"])), dict(self.headers)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    app = ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    out, err = io.StringIO(), io.StringIO()
    listener = Listener(api, out, err, forward_to=f"http://127.0.0.1:{app.server_address[1]}/hooks").start()
    try:
        body, headers = signed(NEW)
        assert post(listener, body, headers) == 204
        tampered = body.replace(b"job_1", b"job_2")
        assert post(listener, tampered, headers) == 401  # never forwarded
    finally:
        listener.close()
        app.shutdown()
    assert len(got) == 1 and got[0][0] == body
    forwarded = {k.lower(): v for k, v in got[0][1].items()}
    Webhook(NEW).verify(got[0][0], {h: forwarded[h] for h in ("webhook-id", "webhook-timestamp",
                                                                 "webhook-signature")})
    assert "forwarded to http://127.0.0.1:" in err.getvalue() and ": 200" in err.getvalue()


def test_listen_is_a_cli_command_with_examples():
    from motionrelay_cli.cli import build_parser

    argv = ["listen", "--forward-to", "http://127.0.0.1:8000/h", "--listen-port", "0"]
    args = build_parser().parse_args(argv)
    assert (args.command, args.forward_to, args.listen_port) == ("listen", "http://127.0.0.1:8000/h", 0)
