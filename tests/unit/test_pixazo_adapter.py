"""The Pixazo adapter against Pixazo's documented wire format (providers.md section 5), no I/O."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import pytest

from motionrelay.domain.job import ProviderState
from motionrelay.providers.base import CallbackRejected, ProviderError, SubmitSpec
from motionrelay.providers.pixazo import PixazoAdapter
from motionrelay.registry import build_adapter

BASE = "https://gateway.pixazo.ai"
API = "/kling-video-v2-6-standard-motion-control/v1/kling-video-v2-6-standard-motion-control"
ADAPTER = PixazoAdapter(api_key="sub-key-1", base_url=BASE + "/")
SPEC = SubmitSpec(image_url="https://s3.example/i.png?sig", video_url="https://s3.example/v.mp4?sig",
                  character_orientation="image", quality="std", prompt=None, negative_prompt=None,
                  keep_original_sound=False, callback_url=None)
RID = "5aefc123-4567-89ab-cdef-0123456789ab"


def respond(status: int, body, headers=None) -> httpx.Response:
    request = httpx.Request("POST", BASE + API + "-request")
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, request=request, headers=headers)
    return httpx.Response(status, text=body, request=request, headers=headers)


def assert_documented_headers(request: httpx.Request) -> None:
    assert request.headers["ocp-apim-subscription-key"] == "sub-key-1"
    assert request.headers["cache-control"] == "no-cache"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers


# --------------------------------------------------------------------------- capabilities


def test_capabilities_follow_the_page():
    caps = ADAPTER.capabilities
    assert caps.qualities == frozenset({"std"})
    assert (caps.prompt, caps.negative_prompt) == (False, False)
    assert (caps.sound_control, caps.progress) == (True, True)
    assert (caps.callbacks, caps.callback_auth, caps.inline_base64) == (False, "none", False)
    # "under 10 seconds" whatever the orientation; 3 s upstream minimum
    assert caps.max_video_seconds_image_orientation == caps.max_video_seconds_video_orientation == 10
    assert caps.min_video_seconds == 3
    assert caps.max_image_bytes == 10 * 1024 * 1024 and caps.max_video_bytes == 100 * 1024 * 1024
    assert caps.video_containers == frozenset({"mp4"})
    assert not ADAPTER.signs_callbacks


def test_the_registry_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MOTIONRELAY_PIXAZO_API_KEY", "env-key")
    adapter = build_adapter("pixazo")
    request = adapter.build_submit(SPEC)
    assert request.headers["ocp-apim-subscription-key"] == "env-key"
    assert str(request.url).startswith("https://gateway.pixazo.ai/")


# --------------------------------------------------------------------------- submit


def test_submit_request_matches_the_documented_body():
    request = ADAPTER.build_submit(SPEC)
    assert request.method == "POST"
    assert str(request.url) == BASE + API + "-request"
    assert_documented_headers(request)
    assert json.loads(request.content) == {
        "image_url": "https://s3.example/i.png?sig",
        "video_url": "https://s3.example/v.mp4?sig",
        "character_orientation": "image",
        "keep_original_sound": False,
    }


@pytest.mark.parametrize("change", [
    {"prompt": "dance"}, {"negative_prompt": "blurry"}, {"quality": "pro"},
], ids=["prompt", "negative-prompt", "pro"])
def test_submit_refuses_what_pixazo_cannot_honour(change):
    # The gateway refuses these before routing; the adapter must never drop them silently.
    # The adapter contract: ProviderError only (final, like Novita's), never a ValueError.
    with pytest.raises(ProviderError) as caught:
        ADAPTER.build_submit(replace(SPEC, **change))
    assert (caught.value.provider, caught.value.code, caught.value.retryable) == (
        "pixazo", "provider_validation_error", False)


def test_submit_response_yields_the_request_id():
    body = {"status": "IN_QUEUE", "request_id": RID, "message": "Motion transfer job queued successfully"}
    assert ADAPTER.parse_submit(respond(200, body)) == RID


@pytest.mark.parametrize("http_status,body,code,retryable", [
    (400, {"error": "Invalid request parameters"}, "provider_validation_error", False),
    (400, {"error": "Input flagged by content moderation"}, "provider_moderation", False),
    (401, {"error": "Invalid or missing authentication"}, "provider_unauthorized", True),
    (403, {"error": "Access denied for this operation"}, "provider_forbidden", True),
    (404, {"error": "Endpoint not found"}, "provider_not_found", True),
    (429, {"error": "Rate limit exceeded, please retry later"}, "provider_rate_limited", True),
    (500, {"error": "An unexpected error occurred, please try again later"}, "provider_error", True),
    (502, "<html>Bad gateway</html>", "provider_error", True),
    (503, "", "provider_unavailable", True),
    (504, "", "provider_timeout", True),
    (413, {"error": "too large"}, "provider_code_413", False),
    (200, {"status": "IN_QUEUE", "message": "queued"}, "provider_bad_response", True),
    (200, {"success": False, "error": "nope"}, "provider_bad_response", True),
    (200, "not json", "provider_bad_response", True),
])
def test_submit_failures_are_classified_by_http_status(http_status, body, code, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(http_status, body))
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.provider == "pixazo"


def test_error_message_and_retry_after_are_kept():
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(429, {"error": "Rate limit exceeded, please retry later"},
                                     headers={"Retry-After": "12"}))
    assert caught.value.message == "Rate limit exceeded, please retry later"
    assert caught.value.retry_after == 12.0 and caught.value.http_status == 429


# --------------------------------------------------------------------------- status


def test_status_request_is_a_post_with_the_request_id():
    request = ADAPTER.build_status(RID)
    assert request.method == "POST"
    assert str(request.url) == BASE + API + "-request-result"
    assert_documented_headers(request)
    assert json.loads(request.content) == {"request_id": RID}


def test_queued():
    status = ADAPTER.parse_status(respond(200, {"status": "IN_QUEUE", "request_id": RID}))
    assert status.state is ProviderState.QUEUED and status.progress is None


def test_in_progress_carries_progress_and_eta():
    body = {"status": "IN_PROGRESS", "request_id": RID, "progress_percent": 65,
            "estimated_remaining_seconds": 18}
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.RUNNING
    assert (status.progress, status.eta_seconds) == (65, 18.0)


@pytest.mark.parametrize("progress,eta,expected", [
    ("42.6", "7", (43, 7.0)), (140, -3, (100, 0.0)), (None, None, (None, None)), (True, "soon", (None, None)),
])
def test_progress_and_eta_are_read_tolerantly(progress, eta, expected):
    body = {"status": "in_progress", "progress_percent": progress, "estimated_remaining_seconds": eta}
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.RUNNING
    assert (status.progress, status.eta_seconds) == expected


def test_completed_yields_the_output_url():
    body = {"status": "COMPLETED", "request_id": RID,
            "output_url": f"https://storage.pixazo.ai/output/{RID}.mp4", "duration_seconds": 4.2,
            "width": 512, "height": 768, "content_type": "video/mp4", "has_audio": True}
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.SUCCEEDED
    assert status.output_url == f"https://storage.pixazo.ai/output/{RID}.mp4"
    assert status.progress == 100 and status.cost is None


@pytest.mark.parametrize("url", [None, "", "  "])
def test_completed_without_output_url_is_a_failure(url):
    status = ADAPTER.parse_status(respond(200, {"status": "COMPLETED", "request_id": RID, "output_url": url}))
    assert status.state is ProviderState.FAILED and status.error_code == "provider_no_output"


def test_failed_carries_the_error_message():
    body = {"status": "FAILED", "request_id": RID, "error_message": "No person detected in image"}
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.FAILED
    assert (status.error_code, status.error_message) == ("provider_failed", "No person detected in image")


def test_failed_for_moderation_is_specific():
    body = {"status": "FAILED", "error_message": "Image rejected: NSFW content"}
    assert ADAPTER.parse_status(respond(200, body)).error_code == "provider_moderation"


def test_failed_without_message_still_explains():
    status = ADAPTER.parse_status(respond(200, {"status": "FAILED"}))
    assert status.error_code == "provider_failed" and status.error_message


@pytest.mark.parametrize("http_status,body,code,retryable", [
    (404, {"error": "Request not found"}, "provider_not_found", False),
    (400, {"error": "Invalid request parameters"}, "provider_validation_error", True),
    (401, {"error": "Invalid or missing authentication"}, "provider_unauthorized", True),
    (429, {"error": "Rate limit exceeded"}, "provider_rate_limited", True),
    (500, "oops", "provider_error", True),
    (200, {"status": "EXPLODED"}, "provider_bad_response", True),
    (200, {"error": "something odd"}, "provider_bad_response", True),
    (200, "<html></html>", "provider_bad_response", True),
])
def test_status_errors(http_status, body, code, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_status(respond(http_status, body))
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


# --------------------------------------------------------------------------- callbacks


def test_callbacks_are_always_rejected():
    with pytest.raises(CallbackRejected, match="does not send callbacks"):
        ADAPTER.verify_callback({"content-type": "application/json"},
                                json.dumps({"request_id": RID, "status": "COMPLETED"}).encode(), time.time())
