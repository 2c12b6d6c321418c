"""The fal adapter against fal's documented queue API and webhook signatures (providers.md 6.2), no I/O."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from motionrelay.domain.job import ProviderState
from motionrelay.providers.base import CallbackKeysStale, CallbackRejected, ProviderError, SubmitSpec
from motionrelay.providers.fal import FalAdapter

ADAPTER = FalAdapter(api_key="fal-key", base_url="https://queue.fal.run/")
SPEC = SubmitSpec(image_url="https://s3.example/i.png?sig", video_url="https://s3.example/v.mp4?sig",
                  character_orientation="video", quality="std", prompt="dance", negative_prompt=None,
                  keep_original_sound=False, callback_url="https://api.example/v1/callbacks/fal/job_1?token=t")
STATUS_URL = "https://queue.fal.run/fal-ai/kling-video/requests/req-1/status"
RESULT_URL = "https://queue.fal.run/fal-ai/kling-video/requests/req-1"
KEY = Ed25519PrivateKey.generate()


def respond(status: int, body, url: str = STATUS_URL) -> httpx.Response:
    request = httpx.Request("GET", url)
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, request=request)
    return httpx.Response(status, text=body, request=request)


def jwks(*private_keys) -> dict:
    keys = [{"kty": "RSA", "n": "x", "e": "AQAB"}]  # other key types are skipped
    for k in private_keys:
        raw = k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        keys.append({"kty": "OKP", "crv": "Ed25519", "kid": "k1",
                     "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()})
    return {"keys": keys}


def signed(body: bytes, *, key=KEY, request_id="req-1", ts: int | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
    message = f"{request_id}\nuser-1\n{ts}\n{hashlib.sha256(body).hexdigest()}".encode()
    return {"X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": "user-1",
            "X-Fal-Webhook-Timestamp": str(ts), "X-Fal-Webhook-Signature": key.sign(message).hex()}


KEYS = ADAPTER.parse_callback_keys(respond(200, jwks(KEY), "https://rest.alpha.fal.ai/.well-known/jwks.json"))
BODY = json.dumps({"request_id": "req-1", "status": "OK", "payload": {"video": {"url": "https://v3b.fal.media/o.mp4"}}}).encode()


def test_submit_goes_to_the_tier_endpoint_with_the_webhook_in_the_query():
    request = ADAPTER.build_submit(SPEC)
    assert request.method == "POST"
    assert request.url.path == "/fal-ai/kling-video/v2.6/standard/motion-control"
    assert request.url.params["fal_webhook"] == SPEC.callback_url
    assert request.headers["authorization"] == "Key fal-key"
    assert json.loads(request.content) == {"image_url": SPEC.image_url, "video_url": SPEC.video_url,
                                           "character_orientation": "video", "keep_original_sound": False,
                                           "prompt": "dance"}
    pro = ADAPTER.build_submit(SubmitSpec(**{**SPEC.__dict__, "quality": "pro", "callback_url": None}))
    assert pro.url.path.endswith("/v2.6/pro/motion-control") and "fal_webhook" not in pro.url.params


def test_submit_answer_yields_the_request_id_and_errors_are_classified():
    assert ADAPTER.parse_submit(respond(200, {"request_id": "req-1", "status_url": STATUS_URL})) == "req-1"
    for status, retryable in ((401, True), (422, False), (429, True), (500, True)):
        with pytest.raises(ProviderError) as err:
            ADAPTER.parse_submit(respond(status, {"detail": "nope"}))
        assert err.value.retryable is retryable
    with pytest.raises(ProviderError) as err:
        ADAPTER.parse_submit(respond(422, {"detail": [{"loc": ["body", "prompt"], "msg": "NSFW content"}]}))
    assert err.value.code == "provider_moderation" and not err.value.retryable


def test_queue_position_is_progress_and_completed_needs_the_result():
    assert ADAPTER.build_status("req-1").url == STATUS_URL
    queued = ADAPTER.parse_status(respond(200, {"status": "IN_QUEUE", "queue_position": 3}))
    assert (queued.state, queued.progress) == (ProviderState.QUEUED, 7)
    assert ADAPTER.parse_status(respond(200, {"status": "IN_QUEUE", "queue_position": 40})).progress == 1
    assert ADAPTER.parse_status(respond(202, {"status": "IN_PROGRESS"})).state is ProviderState.RUNNING
    assert ADAPTER.result_request(respond(200, {"status": "IN_PROGRESS"})) is None
    follow = ADAPTER.result_request(respond(200, {"status": "COMPLETED", "response_url": "https://evil.example/x"}))
    assert follow is not None and str(follow.url) == RESULT_URL, "built from our base URL, never followed"
    assert follow.headers["authorization"] == "Key fal-key"
    done = ADAPTER.parse_status(respond(200, {"video": {"url": "https://v3b.fal.media/o.mp4"}}, RESULT_URL))
    assert (done.state, done.output_url) == (ProviderState.SUCCEEDED, "https://v3b.fal.media/o.mp4")


def test_failures_from_the_status_or_the_result():
    failed = ADAPTER.parse_status(respond(200, {"status": "COMPLETED", "error": "content policy violation"}))
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, "provider_moderation")
    assert ADAPTER.result_request(respond(200, {"status": "COMPLETED", "error": "x"})) is None
    result = ADAPTER.parse_status(respond(500, {"detail": "runner crashed"}, RESULT_URL))
    assert (result.state, result.error_message) == (ProviderState.FAILED, "runner crashed")
    assert ADAPTER.parse_status(respond(200, {"video": {}}, RESULT_URL)).error_code == "provider_no_output"
    with pytest.raises(ProviderError) as err:  # a proxy's page: transient
        ADAPTER.parse_status(respond(502, "<html>bad gateway</html>", RESULT_URL))
    assert err.value.retryable
    with pytest.raises(ProviderError) as err:
        ADAPTER.parse_status(respond(404, {"detail": "Request not found"}))
    assert not err.value.retryable


def test_cancel():
    request = ADAPTER.build_cancel("req-1")
    assert (request.method, str(request.url)) == ("PUT", RESULT_URL + "/cancel")
    assert ADAPTER.parse_cancel(respond(202, {"status": "CANCELLATION_REQUESTED"}))
    assert not ADAPTER.parse_cancel(respond(400, {"status": "ALREADY_COMPLETED"}))


def test_a_signed_callback_verifies_against_the_jwks():
    assert len(KEYS) == 1
    assert ADAPTER.build_callback_keys_request().url == "https://rest.alpha.fal.ai/.well-known/jwks.json"
    assert ADAPTER.verify_callback(signed(BODY), BODY, time.time(), keys=KEYS).task_id == "req-1"
    # A rotated set: any of its keys may have signed.
    other = Ed25519PrivateKey.generate()
    rotated = ADAPTER.parse_callback_keys(respond(200, jwks(other, KEY)))
    assert ADAPTER.verify_callback(signed(BODY), BODY, time.time(), keys=rotated).task_id == "req-1"


def test_forged_tampered_and_replayed_callbacks_are_refused():
    now = time.time()
    headers = signed(BODY)
    with pytest.raises(CallbackKeysStale):  # signed by a key fal does not publish
        ADAPTER.verify_callback(signed(BODY, key=Ed25519PrivateKey.generate()), BODY, now, keys=KEYS)
    with pytest.raises(CallbackKeysStale):  # the body changed after signing
        ADAPTER.verify_callback(headers, BODY.replace(b"o.mp4", b"x.mp4"), now, keys=KEYS)
    with pytest.raises(CallbackKeysStale):  # no keys yet: fetch them
        ADAPTER.verify_callback(headers, BODY, now, keys=())
    with pytest.raises(CallbackRejected):  # another request id than the one signed
        ADAPTER.verify_callback({**headers, "X-Fal-Webhook-Request-Id": "req-2"}, BODY, now, keys=KEYS)
    with pytest.raises(CallbackRejected):  # replayed: the timestamp is stale
        ADAPTER.verify_callback(signed(BODY, ts=int(now) - 301), BODY, now, keys=KEYS)
    with pytest.raises(CallbackRejected):
        ADAPTER.verify_callback({"content-type": "application/json"}, BODY, now, keys=KEYS)
    with pytest.raises(CallbackRejected):
        ADAPTER.verify_callback({**headers, "X-Fal-Webhook-Signature": "zz"}, BODY, now, keys=KEYS)
    mismatch = json.dumps({"request_id": "req-9"}).encode()
    with pytest.raises(CallbackRejected) as err:  # signed, but the body names another request
        ADAPTER.verify_callback(signed(mismatch), mismatch, now, keys=KEYS)
    assert not isinstance(err.value, CallbackKeysStale)


def test_credentials():
    from motionrelay.providers import fal

    adapter = fal.from_credentials("", {"API_KEY": "k", "JWKS_URL": "http://127.0.0.1:1/jwks"})
    assert adapter.build_status("r").url.host == "queue.fal.run"
    assert str(adapter.build_callback_keys_request().url) == "http://127.0.0.1:1/jwks"
    assert fal.CREDENTIALS == ("API_KEY", "JWKS_URL")
