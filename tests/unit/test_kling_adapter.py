"""The official Kling API adapter against its documented wire format (providers.md 6.1), no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import pytest

from motionrelay.domain.job import ProviderState
from motionrelay.providers.base import CallbackRejected, ProviderError, SubmitSpec
from motionrelay.providers.kling import KlingAdapter

NOW = [1_800_000_000.0]
ADAPTER = KlingAdapter(access_key="ak-1", secret_key="sk-1", base_url="https://api-singapore.klingai.com/",
                       clock=lambda: NOW[0])
SPEC = SubmitSpec(image_url="https://s3.example/i.png?sig", video_url="https://s3.example/v.mp4?sig",
                  character_orientation="video", quality="std", prompt="dance", negative_prompt=None,
                  keep_original_sound=False, callback_url="https://api.example/v1/callbacks/kling/job_1?token=t",
                  job_id="job_1", deadline_at=None)


def respond(status: int, body) -> httpx.Response:
    request = httpx.Request("GET", "https://api-singapore.klingai.com/v1/videos/motion-control/1")
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, request=request)
    return httpx.Response(status, text=body, request=request)


def task(status: str, **extra) -> dict:
    return {"code": 0, "message": "SUCCEED", "request_id": "r",
            "data": {"task_id": "8001", "task_status": status, "task_info": {"external_task_id": "job_1"},
                     **extra}}


def decode(token: str) -> tuple[dict, dict]:
    header, payload, signature = token.split(".")
    expected = hmac.new(b"sk-1", f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected, "HS256 with the secret key"
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return tuple(json.loads(base64.urlsafe_b64decode(pad(part))) for part in (header, payload))


def test_submit_body_and_jwt():
    request = ADAPTER.build_submit(SPEC)
    assert request.method == "POST"
    assert str(request.url) == "https://api-singapore.klingai.com/v1/videos/motion-control"
    assert json.loads(request.content) == {
        "model_name": "kling-v2-6", "image_url": SPEC.image_url, "video_url": SPEC.video_url,
        "character_orientation": "video", "mode": "std", "keep_original_sound": "no", "prompt": "dance",
        "callback_url": SPEC.callback_url, "external_task_id": "job_1"}
    scheme, token = request.headers["authorization"].split(" ")
    header, claims = decode(token)
    assert scheme == "Bearer" and header == {"alg": "HS256", "typ": "JWT"}
    assert claims == {"iss": "ak-1", "exp": int(NOW[0]) + 1800, "nbf": int(NOW[0]) - 5}


def test_the_jwt_is_reused_and_refreshed_before_it_expires():
    adapter = KlingAdapter(access_key="ak-1", secret_key="sk-1", clock=lambda: NOW[0])
    first = adapter.build_status("1").headers["authorization"]
    NOW[0] += 1000
    assert adapter.build_status("1").headers["authorization"] == first
    NOW[0] += 600  # less than 5 minutes of the 30 left
    second = adapter.build_status("1").headers["authorization"]
    assert second != first and decode(second.split(" ")[1])[1]["exp"] == int(NOW[0]) + 1800


def test_submit_answers_and_errors():
    assert ADAPTER.parse_submit(respond(200, task("submitted"))) == "8001"
    cases = [(401, 1004, "provider_unauthorized", True), (429, 1102, "provider_insufficient_credits", True),
             (400, 1201, "provider_validation_error", False), (400, 1301, "provider_moderation", False),
             (429, 1303, "provider_rate_limited", True), (500, 5000, "provider_error", True)]
    for status, code, name, retryable in cases:
        with pytest.raises(ProviderError) as err:
            ADAPTER.parse_submit(respond(status, {"code": code, "message": "m", "request_id": "r"}))
        assert (err.value.code, err.value.retryable) == (name, retryable), code
    with pytest.raises(ProviderError) as err:  # an error code under HTTP 200
        ADAPTER.parse_submit(respond(200, {"code": 1201, "message": "bad mode"}))
    assert not err.value.retryable


def test_statuses_cost_and_failures():
    assert ADAPTER.parse_status(respond(200, task("submitted"))).state is ProviderState.QUEUED
    assert ADAPTER.parse_status(respond(200, task("processing"))).state is ProviderState.RUNNING
    done = ADAPTER.parse_status(respond(200, task("succeed", final_unit_deduction="2.5", task_result={
        "videos": [{"id": "v", "url": "https://cdn.klingai.com/o.mp4", "duration": "5.0"}]})))
    assert (done.state, done.output_url, done.cost) == (ProviderState.SUCCEEDED, "https://cdn.klingai.com/o.mp4",
                                                        {"units": 2.5})
    assert ADAPTER.parse_status(respond(200, task("succeed", task_result={"videos": []}))).error_code == \
        "provider_no_output"
    failed = ADAPTER.parse_status(respond(200, task("failed",
                                                    task_status_msg="Failure to pass the risk control")))
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, "provider_moderation")
    with pytest.raises(ProviderError) as err:
        ADAPTER.parse_status(respond(404, {"code": 1203, "message": "task not found"}))
    assert not err.value.retryable


def test_lookup_by_our_job_id():
    request = ADAPTER.build_lookup("job_1")
    assert str(request.url) == "https://api-singapore.klingai.com/v1/videos/motion-control/job_1"
    assert ADAPTER.parse_lookup(respond(200, task("processing")), "job_1") == "8001"
    assert ADAPTER.parse_lookup(respond(404, {"code": 1203, "message": "not found"}), "job_1") is None
    with pytest.raises(ProviderError):  # another job's task is never taken for ours
        ADAPTER.parse_lookup(respond(200, task("processing")), "job_2")
    with pytest.raises(ProviderError) as err:  # Kling could not say: still ambiguous
        ADAPTER.parse_lookup(respond(503, "upstream unavailable"), "job_1")
    assert err.value.retryable


def test_callbacks_name_the_task_and_nothing_else_is_trusted():
    assert ADAPTER.signs_callbacks is False
    body = json.dumps({"task_id": "8001", "task_status": "processing"}).encode()
    assert ADAPTER.verify_callback({}, body, 0).task_id == "8001"
    assert ADAPTER.verify_callback({}, json.dumps({"data": {"task_id": 8001}}).encode(), 0).task_id == "8001"
    for bad in (b"not json", b"[]", b'{"task_status": "succeed"}'):
        with pytest.raises(CallbackRejected):
            ADAPTER.verify_callback({}, bad, 0)
