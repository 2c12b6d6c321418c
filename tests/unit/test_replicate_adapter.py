"""The Replicate adapter against Replicate's documented predictions API and Standard Webhooks
signatures (providers.md 6.3), no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest

from motionrelay.domain.job import ProviderState
from motionrelay.providers.base import CallbackKeysStale, CallbackRejected, ProviderError, SubmitSpec
from motionrelay.providers.replicate import ReplicateAdapter

NOW = 1_800_000_000.0
ADAPTER = ReplicateAdapter(api_key="r8_key", base_url="https://api.replicate.com/", clock=lambda: NOW)
SPEC = SubmitSpec(image_url="https://s3.example/i.png?sig", video_url="https://s3.example/v.mp4?sig",
                  character_orientation="image", quality="pro", prompt="dance", negative_prompt=None,
                  keep_original_sound=True, callback_url="https://api.example/v1/callbacks/replicate/job_1?token=t",
                  job_id="job_1", deadline_at=NOW + 1799.6)
SECRET = b"replicate-signing-secret"
WHSEC = "whsec_" + base64.b64encode(SECRET).decode()


def respond(status: int, body, url: str = "https://api.replicate.com/v1/predictions/p1") -> httpx.Response:
    request = httpx.Request("GET", url)
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, request=request)
    return httpx.Response(status, text=body, request=request)


def sign(body: bytes, *, secret: bytes = SECRET, msg_id: str = "msg_1", ts: int | None = None) -> dict:
    """Standard Webhooks, written from the spec (not with the library the adapter uses)."""
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": "v1,bm90LXRoaXMtb25l v1," + base64.b64encode(mac).decode()}


KEYS = ADAPTER.parse_callback_keys(respond(200, {"key": WHSEC}))
BODY = json.dumps({"id": "p1", "status": "succeeded", "output": "https://replicate.delivery/o.mp4"}).encode()


def test_submit_body_webhook_and_cancel_after():
    request = ADAPTER.build_submit(SPEC)
    assert (request.method, str(request.url)) == (
        "POST", "https://api.replicate.com/v1/models/kwaivgi/kling-v2.6-motion-control/predictions")
    assert request.headers["authorization"] == "Bearer r8_key"
    assert request.headers["cancel-after"] == "1799s"
    assert json.loads(request.content) == {
        "input": {"image": SPEC.image_url, "video": SPEC.video_url, "mode": "pro",
                  "character_orientation": "image", "keep_original_sound": True, "prompt": "dance"},
        "webhook": SPEC.callback_url, "webhook_events_filter": ["start", "completed"]}
    late = ADAPTER.build_submit(SubmitSpec(**{**SPEC.__dict__, "deadline_at": NOW - 5, "callback_url": None}))
    assert late.headers["cancel-after"] == "1s" and "webhook" not in json.loads(late.content)


def test_submit_answers():
    assert ADAPTER.parse_submit(respond(201, {"id": "p1", "status": "starting"})) == "p1"
    for status, retryable in ((401, True), (402, True), (422, False), (429, True), (503, True)):
        with pytest.raises(ProviderError) as err:
            ADAPTER.parse_submit(respond(status, {"detail": "nope"}))
        assert err.value.retryable is retryable
    with pytest.raises(ProviderError) as err:
        ADAPTER.parse_submit(respond(429, {"detail": "Request was throttled."}))
    assert err.value.code == "provider_rate_limited"


@pytest.mark.parametrize("body,state,extra", [
    ({"status": "starting"}, ProviderState.QUEUED, {}),
    ({"status": "processing", "logs": "step 1\n 12%|#  \n 45%|####"}, ProviderState.RUNNING,
     {"progress": 45}),
    ({"status": "succeeded", "output": "https://replicate.delivery/o.mp4", "metrics": {"predict_time": 61.2}},
     ProviderState.SUCCEEDED,
     {"output_url": "https://replicate.delivery/o.mp4", "cost": {"predict_seconds": 61.2}}),
    ({"status": "succeeded", "output": ["https://replicate.delivery/o.mp4"]}, ProviderState.SUCCEEDED,
     {"output_url": "https://replicate.delivery/o.mp4"}),
    ({"status": "succeeded", "output": "https://x/o.mp4", "data_removed": True}, ProviderState.FAILED,
     {"error_code": "provider_no_output"}),
    ({"status": "failed", "error": "NSFW content detected"}, ProviderState.FAILED,
     {"error_code": "provider_moderation"}),
    ({"status": "failed", "error": "CUDA out of memory"}, ProviderState.FAILED,
     {"error_code": "provider_failed"}),
    ({"status": "aborted"}, ProviderState.FAILED, {"error_code": "provider_canceled"}),
    ({"status": "canceled"}, ProviderState.FAILED, {"error_code": "provider_canceled"}),
])
def test_statuses(body, state, extra):
    status = ADAPTER.parse_status(respond(200, {"id": "p1", **body}))
    assert status.state is state
    for key, value in extra.items():
        assert getattr(status, key) == value


def test_unknown_prediction_is_final_and_cancel():
    with pytest.raises(ProviderError) as err:
        ADAPTER.parse_status(respond(404, {"detail": "Not found."}))
    assert not err.value.retryable
    request = ADAPTER.build_cancel("p1")
    assert (request.method, str(request.url)) == ("POST", "https://api.replicate.com/v1/predictions/p1/cancel")
    assert ADAPTER.parse_cancel(respond(200, {"id": "p1", "status": "canceled"}))
    assert not ADAPTER.parse_cancel(respond(200, {"id": "p1", "status": "succeeded"}))


def test_webhook_secret_and_a_signed_callback():
    request = ADAPTER.build_callback_keys_request()
    assert str(request.url) == "https://api.replicate.com/v1/webhooks/default/secret"
    assert request.headers["authorization"] == "Bearer r8_key"
    assert KEYS == (SECRET,)
    assert ADAPTER.verify_callback(sign(BODY), BODY, time.time(), keys=KEYS).task_id == "p1"
    with pytest.raises(ProviderError):
        ADAPTER.parse_callback_keys(respond(200, {"key": "not-a-secret"}))


def test_forged_tampered_and_replayed_callbacks_are_refused():
    now = time.time()
    with pytest.raises(CallbackKeysStale):  # another secret (or a rotated one: fetch it again)
        ADAPTER.verify_callback(sign(BODY, secret=b"guess"), BODY, now, keys=KEYS)
    with pytest.raises(CallbackKeysStale):  # body changed
        ADAPTER.verify_callback(sign(BODY), BODY.replace(b"o.mp4", b"x.mp4"), now, keys=KEYS)
    with pytest.raises(CallbackKeysStale):  # webhook-id changed (the id is signed)
        ADAPTER.verify_callback({**sign(BODY), "webhook-id": "msg_2"}, BODY, now, keys=KEYS)
    with pytest.raises(CallbackKeysStale):
        ADAPTER.verify_callback(sign(BODY), BODY, now, keys=())
    with pytest.raises(CallbackRejected):  # replayed after the window
        ADAPTER.verify_callback(sign(BODY, ts=int(now) - 301), BODY, now, keys=KEYS)
    with pytest.raises(CallbackRejected):
        ADAPTER.verify_callback({"webhook-id": "m"}, BODY, now, keys=KEYS)
    garbage = {**sign(BODY), "webhook-signature": "v1,!!!not-base64 v2,abc"}
    with pytest.raises(CallbackRejected):
        ADAPTER.verify_callback(garbage, BODY, now, keys=KEYS)
