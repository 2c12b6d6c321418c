"""The Novita adapter against Novita's documented wire format (providers.md section 3), no I/O."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from motionrelay.domain.job import ProviderState
from motionrelay.providers.base import CallbackRejected, ProviderError, SubmitSpec
from motionrelay.providers.novita import NovitaAdapter
from motionrelay.registry import build_adapter

ADAPTER = NovitaAdapter(api_key="nv-123", base_url="https://api.novita.ai/")
CALLBACK = "https://api.example/v1/callbacks/novita/job_1?token=t"
SPEC = SubmitSpec(image_url="https://s3.example/i.png?sig", video_url="https://s3.example/v.mp4?sig",
                  character_orientation="image", quality="pro", prompt="dance", negative_prompt="blurry",
                  keep_original_sound=False, callback_url=CALLBACK)
OUTPUT = "https://faas-output-video.s3.ap-southeast-1.amazonaws.com/prod/t1/0.mp4?X-Amz-Expires=3600"


def respond(status: int, body, headers=None) -> httpx.Response:
    request = httpx.Request("GET", "https://api.novita.ai/")
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, request=request, headers=headers)
    return httpx.Response(status, text=body, request=request, headers=headers)


def result(status: str, *, reason: str = "", eta=0, progress=0, videos=None) -> dict:
    return {
        "task": {"task_id": "t1", "task_type": "KLING_V2_6_PRO_MOTION_CONTROL", "status": status,
                 "reason": reason, "eta": eta, "progress_percent": progress},
        "images": [], "videos": videos or [], "audios": [],
        "extra": {"debug_info": {"request_info": "{}", "submit_time_ms": "1"}},
    }


def novita_error(status: int, reason: str, message: str = "details") -> httpx.Response:
    return respond(status, {"code": status, "reason": reason, "message": message})


# --------------------------------------------------------------------------- capabilities


def test_capabilities_follow_the_documented_limits():
    caps = ADAPTER.capabilities
    assert caps.qualities == frozenset({"pro"})  # only the Pro endpoint is documented
    assert (caps.callbacks, caps.callback_auth, ADAPTER.signs_callbacks) == (True, "url-token", False)
    assert caps.inline_base64 is False  # the video must be a URL
    assert caps.max_image_bytes == caps.max_video_bytes == 10 * 1024 * 1024
    assert (caps.min_video_seconds, caps.max_video_seconds_image_orientation,
            caps.max_video_seconds_video_orientation) == (3, 10, 30)
    assert caps.prompt and caps.negative_prompt and caps.sound_control and caps.progress


def test_the_registry_reads_the_key(monkeypatch):
    monkeypatch.setenv("MOTIONRELAY_NOVITA_API_KEY", "from-env")
    request = build_adapter("novita").build_status("t1")
    assert str(request.url).startswith("https://api.novita.ai/v3/async/task-result")
    assert request.headers["authorization"] == "Bearer from-env"


# --------------------------------------------------------------------------- submit


def test_submit_request_matches_the_documented_body():
    request = ADAPTER.build_submit(SPEC)
    assert request.method == "POST"
    assert str(request.url) == "https://api.novita.ai/v3/async/kling-v2.6-pro-motion-control"
    assert request.headers["authorization"] == "Bearer nv-123"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "image": "https://s3.example/i.png?sig",
        "video": "https://s3.example/v.mp4?sig",
        "character_orientation": "image",
        "prompt": "dance",
        "negative_prompt": "blurry",
        "keep_original_sound": False,
        "extra": {"webhook": {"url": CALLBACK}},
    }


def test_optional_fields_are_left_out_when_unset():
    spec = SubmitSpec(image_url="https://s3.example/i.png", video_url="https://s3.example/v.mp4",
                      character_orientation="video", quality="pro", prompt=None, negative_prompt=None,
                      keep_original_sound=True, callback_url=None)
    assert json.loads(ADAPTER.build_submit(spec).content) == {
        "image": "https://s3.example/i.png", "video": "https://s3.example/v.mp4",
        "character_orientation": "video", "keep_original_sound": True,
    }


def test_a_standard_quality_request_is_refused_before_paying():
    spec = SubmitSpec(**{**SPEC.__dict__, "quality": "std"})
    with pytest.raises(ProviderError) as caught:
        ADAPTER.build_submit(spec)
    assert (caught.value.code, caught.value.retryable) == ("provider_validation_error", False)


@pytest.mark.parametrize("body", [{"task_id": "8a1c-uuid"}, {"data": {"task_id": "8a1c-uuid"}}])
def test_submit_response_yields_the_task_id(body):
    assert ADAPTER.parse_submit(respond(200, body)) == "8a1c-uuid"


@pytest.mark.parametrize("response,code,retryable", [
    (novita_error(400, "INVALID_REQUEST_BODY"), "provider_validation_error", False),
    (novita_error(400, "IMAGE_FILE_EXCEEDS_MAX_SIZE"), "provider_validation_error", False),
    (novita_error(400, "ILLEGAL_PROMPT"), "provider_moderation", False),
    (novita_error(400, "ILLEGAL_IMAGE_CONTENT"), "provider_moderation", False),
    (novita_error(400, "BILLING_BALANCE_NOT_ENOUGH"), "provider_insufficient_credits", True),
    (novita_error(400, "MISSING_API_KEY"), "provider_unauthorized", True),
    (novita_error(403, "INVALID_API_KEY", "invalid api-key"), "provider_unauthorized", True),
    (novita_error(403, "API_NOT_ALLOWED"), "provider_forbidden", True),
    (novita_error(403, "BILLING_AUTH_FAILED"), "provider_forbidden", True),
    (novita_error(403, "NEED_REAL_NAME_VERIFY"), "provider_forbidden", True),
    (novita_error(404, "API_NOT_FOUND"), "provider_not_found", True),
    (novita_error(429, "RATE_LIMIT_EXCEEDED"), "provider_rate_limited", True),
    (novita_error(500, "CREATE_TASK_FAILED"), "provider_error", True),
    (novita_error(500, "BILLING_FAILED"), "provider_error", True),
    (respond(503, "503 Service Temporarily Unavailable"), "provider_unavailable", True),
    (respond(504, "<html>504 Gateway Time-out</html>"), "provider_timeout", True),
    (respond(502, ""), "provider_error", True),
    (respond(400, {"message": "bad field"}), "provider_validation_error", False),
    (respond(401, {"message": "no key"}), "provider_unauthorized", True),
    (respond(422, {"message": "?"}), "provider_code_422", False),
    (respond(400, {"code": "ILLEGAL_PROMPT", "msg": "nope"}), "provider_moderation", False),
    (novita_error(400, "SOMETHING_NEW"), "provider_validation_error", False),
    (respond(200, {"code": 400, "reason": "BILLING_BALANCE_NOT_ENOUGH", "message": "x"}),
     "provider_insufficient_credits", True),
    (respond(200, {}), "provider_bad_response", True),
    (respond(200, "not json"), "provider_bad_response", True),
])
def test_submit_failures_are_classified_by_error_name_then_status(response, code, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(response)
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.http_status == response.status_code


def test_error_message_keeps_name_and_text_and_retry_after():
    response = respond(429, {"code": 429, "reason": "RATE_LIMIT_EXCEEDED", "message": "slow down"},
                       headers={"Retry-After": "7"})
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(response)
    assert caught.value.retry_after == 7.0
    assert "RATE_LIMIT_EXCEEDED" in caught.value.message and "slow down" in caught.value.message


# --------------------------------------------------------------------------- status


def test_status_request():
    request = ADAPTER.build_status("t 1")
    assert request.method == "GET"
    assert str(request.url) == "https://api.novita.ai/v3/async/task-result?task_id=t+1"
    assert request.headers["authorization"] == "Bearer nv-123"


@pytest.mark.parametrize("status,expected", [
    ("TASK_STATUS_QUEUED", ProviderState.QUEUED),
    ("TASK_STATUS_PROCESSING", ProviderState.RUNNING),
    ("task_status_processing", ProviderState.RUNNING),
    ("PROCESSING", ProviderState.RUNNING),
    ("TASK_STATUS_FAILED", ProviderState.FAILED),
    ("TASK_STATUS_CANCELED", ProviderState.FAILED),
])
def test_states_map(status, expected):
    assert ADAPTER.parse_status(respond(200, result(status))).state is expected


def test_progress_and_eta_are_reported_while_running():
    status = ADAPTER.parse_status(respond(200, result("TASK_STATUS_PROCESSING", eta=42, progress=37)))
    assert (status.state, status.progress, status.eta_seconds) == (ProviderState.RUNNING, 37, 42.0)


@pytest.mark.parametrize("eta,progress,expected", [(0, 0, (0, None)), ("15", "12", (12, 15.0)),
                                                   (None, 150, (100, None)), ("soon", None, (None, None))])
def test_progress_and_eta_are_read_tolerantly(eta, progress, expected):
    status = ADAPTER.parse_status(respond(200, result("TASK_STATUS_QUEUED", eta=eta, progress=progress)))
    assert (status.progress, status.eta_seconds) == expected


def test_success_reads_the_first_video_url():
    videos = [{"video_url": OUTPUT, "video_url_ttl": "3600", "video_type": "mp4"}]
    status = ADAPTER.parse_status(respond(200, result("TASK_STATUS_SUCCEED", progress=100, videos=videos)))
    assert status.state is ProviderState.SUCCEEDED
    assert (status.output_url, status.progress) == (OUTPUT, 100)


@pytest.mark.parametrize("videos", [[], [{"video_url": ""}], [{"video_type": "mp4"}], None])
def test_success_without_url_is_a_failure(videos):
    body = result("TASK_STATUS_SUCCEED")
    body["videos"] = videos
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.FAILED and status.error_code == "provider_no_output"


@pytest.mark.parametrize("reason,code", [
    ("face not detected in the reference image", "provider_failed"),
    ("", "provider_failed"),
    ("ILLEGAL_IMAGE_CONTENT", "provider_moderation"),
    ("The image contains inappropriate content", "provider_moderation"),
    ("content policy violation", "provider_moderation"),
])
def test_failure_carries_the_reason(reason, code):
    status = ADAPTER.parse_status(respond(200, result("TASK_STATUS_FAILED", reason=reason)))
    assert status.state is ProviderState.FAILED and status.error_code == code
    assert status.error_message == (reason or "Novita reported the task as failed")
    assert status.output_url is None


def test_a_canceled_task_says_so():
    status = ADAPTER.parse_status(respond(200, result("TASK_STATUS_CANCELED", reason="by user")))
    assert status.error_code == "provider_failed"
    assert status.error_message == "Novita canceled the task: by user"


@pytest.mark.parametrize("response,retryable", [
    (novita_error(404, "TASK_NOT_FOUND"), False),
    (respond(404, "not found"), False),
    (novita_error(404, "API_NOT_FOUND"), True),  # a wrong endpoint, not an unknown task
    (novita_error(400, "INVALID_REQUEST_BODY"), True),
    (novita_error(403, "INVALID_API_KEY"), True),
    (novita_error(500, "GET_RESULT_FAILED"), True),
    (novita_error(429, "RATE_LIMIT_EXCEEDED"), True),
    (respond(503, ""), True),
    (respond(200, result("TASK_STATUS_EXPLODED")), True),
    (respond(200, {"videos": []}), True),
    (respond(200, {"code": 404, "reason": "TASK_NOT_FOUND", "message": "Task not found"}), False),
])
def test_status_errors(response, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_status(response)
    assert caught.value.retryable is retryable


# --------------------------------------------------------------------------- callbacks


def event(task_id="t1", event_type="ASYNC_TASK_RESULT", status="TASK_STATUS_SUCCEED") -> bytes:
    return json.dumps({"event_type": event_type, "payload": result(status) | {"task": {
        "task_id": task_id, "status": status}}}).encode()


def test_callback_names_the_task_without_any_signature():
    hint = ADAPTER.verify_callback({"Content-Type": "application/json"}, event(), time.time())
    assert hint.task_id == "t1"
    assert ADAPTER.verify_callback({}, event(status="TASK_STATUS_FAILED"), 0).task_id == "t1"


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b'"ASYNC_TASK_RESULT"',
    event(event_type="SOMETHING_ELSE"),
    json.dumps({"payload": {"task": {"task_id": "t1"}}}).encode(),  # no event_type
    json.dumps({"event_type": "ASYNC_TASK_RESULT"}).encode(),
    json.dumps({"event_type": "ASYNC_TASK_RESULT", "payload": {"task": {}}}).encode(),
    json.dumps({"event_type": "ASYNC_TASK_RESULT", "payload": {"task": {"task_id": " "}}}).encode(),
    json.dumps({"event_type": "ASYNC_TASK_RESULT", "payload": {"task": {"task_id": 7}}}).encode(),
    b"[" * 100_000, b'{"payload":' * 100_000,  # nested too deep to parse: RecursionError
])
def test_unusable_callbacks_are_rejected(raw):
    with pytest.raises(CallbackRejected):
        ADAPTER.verify_callback({}, raw, time.time())
