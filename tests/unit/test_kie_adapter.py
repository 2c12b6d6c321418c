"""The Kie adapter against Kie's documented wire format (providers.md section 4), no I/O."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from conftest import kie_signature
from motionrelay.domain.job import ProviderState
from motionrelay.providers.base import CallbackRejected, ProviderError, SubmitSpec
from motionrelay.providers.kie import KieAdapter

ADAPTER = KieAdapter(api_key="k-123", base_url="https://api.kie.ai/", webhook_hmac_key="hmac-key")
SPEC = SubmitSpec(image_url="https://s3.example/i.png?sig", video_url="https://s3.example/v.mp4?sig",
                  character_orientation="video", quality="pro", prompt="dance", negative_prompt=None,
                  keep_original_sound=True, callback_url="https://api.example/v1/callbacks/kie/job_1?token=t")


def respond(status: int, body, request: httpx.Request | None = None, headers=None) -> httpx.Response:
    request = request or httpx.Request("GET", "https://api.kie.ai/")
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, request=request, headers=headers)
    return httpx.Response(status, text=body, request=request, headers=headers)


def record(state: str, **extra) -> dict:
    return {"code": 200, "msg": "success", "data": {"taskId": "task_1", "model": "kling-2.6/motion-control",
                                                    "state": state, "param": "{}", "resultJson": "",
                                                    "failCode": "", "failMsg": "", **extra}}


def test_submit_request_matches_the_documented_body():
    request = ADAPTER.build_submit(SPEC)
    assert request.method == "POST"
    assert str(request.url) == "https://api.kie.ai/api/v1/jobs/createTask"
    assert request.headers["authorization"] == "Bearer k-123"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "kling-2.6/motion-control",
        "callBackUrl": "https://api.example/v1/callbacks/kie/job_1?token=t",
        "input": {"input_urls": ["https://s3.example/i.png?sig"], "video_urls": ["https://s3.example/v.mp4?sig"],
                  "character_orientation": "video", "mode": "1080p", "prompt": "dance"},
    }


def test_submit_response_yields_the_task_id():
    body = {"code": 200, "msg": "success", "data": {"taskId": "task_kling-2.6_1767693973938"}}
    assert ADAPTER.parse_submit(respond(200, body)) == "task_kling-2.6_1767693973938"


@pytest.mark.parametrize("http_status,body,code,retryable", [
    (200, {"code": 422, "msg": "input_urls is required"}, "provider_validation_error", False),
    (200, {"code": 501, "msg": "Generation failed"}, "generation_failed", False),
    (200, {"code": 455, "msg": "Service Unavailable"}, "provider_maintenance", True),
    (200, {"code": 402, "msg": "Insufficient Credits"}, "provider_insufficient_credits", True),
    (200, {"code": 429, "msg": "Rate Limited"}, "provider_rate_limited", True),
    (200, {"code": 401, "msg": "You do not have access permissions"}, "provider_unauthorized", True),
    (401, {"code": 401, "msg": "You do not have access permissions"}, "provider_unauthorized", True),
    (429, "Too Many Requests", "provider_rate_limited", True),
    (500, "<html>Bad gateway</html>", "provider_error", True),
    (503, "", "provider_code_503", True),
    (400, {"msg": "bad"}, "provider_code_400", False),
    (200, {"code": 200, "msg": "success", "data": {}}, "provider_bad_response", True),
])
def test_submit_failures_are_classified_by_body_code_and_http_status(http_status, body, code, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(http_status, body))
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


def test_retry_after_is_kept():
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(429, {"code": 429, "msg": "slow down"}, headers={"Retry-After": "7"}))
    assert caught.value.retry_after == 7.0


def test_status_request():
    request = ADAPTER.build_status("task_1")
    assert str(request.url) == "https://api.kie.ai/api/v1/jobs/recordInfo?taskId=task_1"
    assert request.headers["authorization"] == "Bearer k-123"


@pytest.mark.parametrize("state,expected", [
    ("waiting", ProviderState.QUEUED), ("queuing", ProviderState.QUEUED),
    ("generating", ProviderState.RUNNING), ("fail", ProviderState.FAILED),
])
def test_states_map(state, expected):
    assert ADAPTER.parse_status(respond(200, record(state))).state is expected


def test_success_reads_the_result_json_string():
    body = record("success", resultJson=json.dumps({"resultUrls": ["https://tempfile.example/a.mp4"]}),
                  creditsConsumed=44)
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.SUCCEEDED
    assert status.output_url == "https://tempfile.example/a.mp4"
    assert status.cost == {"credits": 44}


def test_success_tolerates_result_json_as_an_object():
    body = record("success", resultJson={"resultUrls": ["https://tempfile.example/b.mp4"]})
    assert ADAPTER.parse_status(respond(200, body)).output_url == "https://tempfile.example/b.mp4"


def test_success_without_url_is_a_failure():
    status = ADAPTER.parse_status(respond(200, record("success", resultJson="{}")))
    assert status.state is ProviderState.FAILED and status.error_code == "provider_no_output"


@pytest.mark.parametrize("fail_code", ["500", 500])
def test_failure_carries_code_and_message(fail_code):
    status = ADAPTER.parse_status(respond(200, record("fail", failCode=fail_code, failMsg="face not found")))
    assert status.error_code == "provider_failed_500" and status.error_message == "face not found"


@pytest.mark.parametrize("body,retryable", [
    ({"code": 404, "msg": "Task not found"}, False),
    ({"code": 422, "msg": "recordInfo is null"}, True),
    ({"code": 500, "msg": "Server Error"}, True),
    (record("exploded"), True),
])
def test_status_errors(body, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_status(respond(200, body))
    assert caught.value.retryable is retryable


def signed_headers(task_id="task_1", at=None, key="hmac-key"):
    timestamp = str(int(at if at is not None else time.time()))
    return {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": kie_signature(task_id, timestamp, key)}


@pytest.mark.parametrize("body", [
    {"taskId": "task_1", "code": 200, "data": {}},
    {"code": 200, "data": {"taskId": "task_1", "state": "success"}},
    {"code": 200, "data": {"task_id": "task_1", "callbackType": "task_completed"}},
])
def test_callback_task_id_is_read_from_any_documented_place(body):
    hint = ADAPTER.verify_callback(signed_headers(), json.dumps(body).encode(), time.time())
    assert hint.task_id == "task_1"


@pytest.mark.parametrize("make_headers", [
    lambda: {},
    lambda: {"X-Webhook-Timestamp": str(int(time.time()))},
    lambda: signed_headers(key="other-key"),
    lambda: signed_headers(task_id="task_2"),
    lambda: signed_headers(at=time.time() - 301),
    lambda: signed_headers(at=time.time() + 301),
])
def test_bad_signatures_are_rejected(make_headers):
    # Headers are built when the test runs: a timestamp made at collection time would drift.
    with pytest.raises(CallbackRejected):
        ADAPTER.verify_callback(make_headers(), b'{"taskId": "task_1"}', time.time())


def test_header_names_are_case_insensitive():
    headers = {k.lower(): v for k, v in signed_headers().items()}
    assert ADAPTER.verify_callback(headers, b'{"taskId": "task_1"}', time.time()).task_id == "task_1"


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"data": {}}',
                                 b"[" * 100_000, b'{"data":' * 100_000],  # too deep: RecursionError
                         ids=["not-json", "array", "no-task", "deep-arrays", "deep-objects"])
def test_unusable_bodies_are_rejected(raw):
    with pytest.raises(CallbackRejected):
        ADAPTER.verify_callback(signed_headers(), raw, time.time())


def test_without_hmac_key_callbacks_are_unsigned_hints():
    unsigned = KieAdapter(api_key="k")
    assert not unsigned.signs_callbacks and ADAPTER.signs_callbacks
    assert unsigned.verify_callback({}, b'{"taskId": "task_1"}', time.time()).task_id == "task_1"
