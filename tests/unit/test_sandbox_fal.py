"""The fal sandbox, driven over loopback HTTP with raw httpx calls written from fal's docs.

No gateway adapter is involved: the requests are what fal's queue docs say a client sends, and
the webhook signature is checked the way fal's webhook docs say a receiver checks it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from motionrelay_local.loopback import Receiver, loopback_url, serve, wait_until
from motionrelay_local.sandbox import Sandbox

KEY = "sandbox-fal-key"
MODEL = "/fal-ai/kling-video/v2.6/standard/motion-control"


@pytest.fixture(scope="module")
def media(sample_media: ThreadingHTTPServer) -> ThreadingHTTPServer:
    return sample_media


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(api_keys={"fal": KEY}).start()
    sb.configure("fal", state_seconds=0.05)
    yield sb
    sb.stop()


@pytest.fixture
def http(loopback_http: httpx.Client) -> httpx.Client:
    return loopback_http


def _body(media) -> dict:
    return {"image_url": loopback_url(media, "character.png"), "video_url": loopback_url(media, "motion.mp4"),
            "character_orientation": "image", "prompt": "dance"}


def test_auth_validation_and_the_public_jwks(sandbox, media, http):
    base = sandbox.base_url("fal")
    assert http.post(base + MODEL, json=_body(media)).status_code == 401
    bearer = {"Authorization": "Bearer " + KEY}
    assert http.post(base + MODEL, json=_body(media), headers=bearer).status_code == 401
    bad = http.post(base + MODEL, json={**_body(media), "character_orientation": "sideways"},
                    headers={"Authorization": "Key " + KEY})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "character_orientation"]
    jwks = http.get(base + "/.well-known/jwks.json").json()  # no key needed
    assert jwks["keys"][0]["kty"] == "OKP" and jwks["keys"][0]["crv"] == "Ed25519"


def test_queue_status_result_and_signed_webhook(sandbox, media, http):
    handler = type("Receiver", (Receiver,), {"received": [], "statuses": []})
    srv = serve(handler)
    try:
        base = sandbox.base_url("fal")
        auth = {"Authorization": "Key " + KEY}
        submitted = http.post(base + MODEL, params={"fal_webhook": loopback_url(srv, "hook")},
                              json=_body(media), headers=auth).json()
        request_id = submitted["request_id"]
        assert submitted["status_url"].endswith(f"/fal-ai/kling-video/requests/{request_id}/status")
        first = http.get(submitted["status_url"], headers=auth).json()
        assert first["status"] == "IN_QUEUE" and isinstance(first["queue_position"], int)
        early = http.get(submitted["response_url"], headers=auth)
        assert early.status_code == 400
        sandbox.wait_task(request_id)
        assert http.get(submitted["status_url"], headers=auth).json()["status"] == "COMPLETED"
        video = http.get(submitted["response_url"], headers=auth).json()["video"]
        assert video["content_type"] == "video/mp4" and http.get(video["url"]).status_code == 200

        call = wait_until(lambda: handler.received)[0]
        headers = {k.lower(): v for k, v in call["headers"].items()}
        assert headers["x-fal-webhook-request-id"] == request_id
        message = "\n".join((request_id, headers["x-fal-webhook-user-id"], headers["x-fal-webhook-timestamp"],
                             hashlib.sha256(call["body"]).hexdigest())).encode()
        signature = bytes.fromhex(headers["x-fal-webhook-signature"])
        jwks = http.get(base + "/.well-known/jwks.json").json()
        key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwks["keys"][0]["x"] + "=="))
        key.verify(signature, message)  # raises if the sandbox signed wrongly
        with pytest.raises(InvalidSignature):
            key.verify(signature, message + b"x")
    finally:
        srv.shutdown()
        srv.server_close()


def test_cancel_only_while_queued(sandbox, media, http):
    base = sandbox.base_url("fal")
    auth = {"Authorization": "Key " + KEY}
    sandbox.configure("fal", state_seconds=0.5)
    try:
        request_id = http.post(base + MODEL, json=_body(media), headers=auth).json()["request_id"]
        cancel = http.put(f"{base}/fal-ai/kling-video/requests/{request_id}/cancel", headers=auth)
        assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
        sandbox.wait_task(request_id)
        assert http.get(f"{base}/fal-ai/kling-video/requests/{request_id}", headers=auth).status_code == 400
        again = http.put(f"{base}/fal-ai/kling-video/requests/{request_id}/cancel", headers=auth)
        assert again.json() == {"status": "ALREADY_COMPLETED"}
    finally:
        sandbox.configure("fal", state_seconds=0.05)
