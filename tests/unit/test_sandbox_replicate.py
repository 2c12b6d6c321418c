"""The Replicate sandbox, driven with raw httpx calls written from Replicate's docs; webhook
signatures checked per the Standard Webhooks spec with hmac (no adapter involved)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator

import httpx
import pytest

from motionrelay_local.loopback import Receiver, loopback_url, serve, wait_until
from motionrelay_local.sandbox import Sandbox

KEY = "sandbox-replicate-key"
CREATE = "/v1/models/kwaivgi/kling-v2.6-motion-control/predictions"
AUTH = {"Authorization": "Bearer " + KEY}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(api_keys={"replicate": KEY}).start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def _knobs(sandbox):
    sandbox.configure("replicate", state_seconds=0.05)


@pytest.fixture
def http(loopback_http: httpx.Client) -> httpx.Client:
    return loopback_http


def _input(media) -> dict:
    return {"image": loopback_url(media, "character.png"), "video": loopback_url(media, "motion.mp4"),
            "mode": "std", "character_orientation": "image"}


def test_auth_and_validation(sandbox, sample_media, http):
    base = sandbox.base_url("replicate")
    assert http.post(base + CREATE, json={"input": _input(sample_media)}).status_code == 401
    assert http.get(base + "/v1/webhooks/default/secret").status_code == 401
    bad = http.post(base + CREATE, json={"input": {**_input(sample_media), "mode": "ultra"}}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["invalid_fields"][0]["field"] == "input.mode"


def test_prediction_and_signed_webhooks(sandbox, sample_media, http):
    handler = type("Receiver", (Receiver,), {"received": [], "statuses": []})
    srv = serve(handler)
    try:
        base = sandbox.base_url("replicate")
        created = http.post(base + CREATE, headers={**AUTH, "Cancel-After": "10m"},
                            json={"input": _input(sample_media), "webhook": loopback_url(srv, "hook"),
                                  "webhook_events_filter": ["start", "completed"]})
        assert created.status_code == 201 and created.json()["status"] == "starting"
        prediction_id = created.json()["id"]
        sandbox.wait_task(prediction_id)
        done = http.get(created.json()["urls"]["get"], headers=AUTH).json()
        assert done["status"] == "succeeded" and http.get(done["output"]).status_code == 200
        assert done["metrics"]["predict_time"] >= 0
        calls = wait_until(lambda: handler.received if len(handler.received) >= 2 else None)
        key = http.get(base + "/v1/webhooks/default/secret", headers=AUTH).json()["key"]
        secret = base64.b64decode(key.removeprefix("whsec_"))
        for call in calls:
            h = {k.lower(): v for k, v in call["headers"].items()}
            mac = hmac.new(secret, f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + call["body"],
                           hashlib.sha256).digest()
            assert h["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
    finally:
        srv.shutdown()
        srv.server_close()


def test_cancel_after_aborts_and_cancel_cancels(sandbox, sample_media, http):
    base = sandbox.base_url("replicate")
    sandbox.configure("replicate", state_seconds=0.6)
    aborted = http.post(base + CREATE, headers={**AUTH, "Cancel-After": "0s"},
                        json={"input": _input(sample_media)}).json()
    sandbox.wait_task(aborted["id"])
    assert http.get(aborted["urls"]["get"], headers=AUTH).json()["status"] == "aborted"
    running = http.post(base + CREATE, headers=AUTH, json={"input": _input(sample_media)}).json()
    canceled = http.post(running["urls"]["cancel"], headers=AUTH).json()
    assert canceled["status"] == "canceled"
    sandbox.wait_task(running["id"])
    assert http.get(running["urls"]["get"], headers=AUTH).json()["output"] is None
    assert http.post(base + CREATE, headers={**AUTH, "Cancel-After": "soon"},
                     json={"input": _input(sample_media)}).status_code == 400
