"""The VibeDream adapter against VibeDream's documented wire format (providers.md section 1), no I/O."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import pytest

from motionrelay.domain.job import ProviderState
from motionrelay.providers.base import CallbackRejected, ProviderError, SubmitSpec
from motionrelay.providers.vibedream import VibeDreamAdapter
from motionrelay.registry import build_adapter

BASE = "https://api.vibedream.ai"
ADAPTER = VibeDreamAdapter(api_key="vd-key", base_url=BASE + "/")
SPEC = SubmitSpec(image_url="https://s3.example/i.png?sig", video_url="https://s3.example/v.mp4?sig",
                  character_orientation="video", quality="pro", prompt="dance", negative_prompt="blurry",
                  keep_original_sound=True, callback_url=None)
PID = "550e8400-e29b-41d4-a716-446655440000"
OUTPUT = f"https://assets.vibedream.ai/outputs/{PID}/1736942400000-0.mp4"


def respond(status: int, body, headers=None) -> httpx.Response:
    request = httpx.Request("GET", f"{BASE}/api/v1/predictions/{PID}")
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, request=request, headers=headers)
    return httpx.Response(status, text=body, request=request, headers=headers)


def prediction(status: str, **extra) -> dict:
    return {"id": PID, "modelId": "kling-v2.6-pro-motion", "modelName": "Kling 2.6 Pro Motion Control",
            "status": status, "outputs": None, "error": None, "createdAt": "2025-01-15T12:00:00.000Z",
            "completedAt": None, **extra}


# --------------------------------------------------------------------------- capabilities


def test_capabilities_follow_the_page():
    caps = ADAPTER.capabilities
    assert caps.qualities == frozenset({"pro"})
    assert (caps.prompt, caps.negative_prompt, caps.sound_control, caps.progress) == (True, True, True, False)
    assert (caps.callbacks, caps.callback_auth, caps.inline_base64) == (False, "none", False)
    assert caps.max_image_bytes == caps.max_video_bytes == 10 * 1024 * 1024
    assert (caps.min_video_seconds, caps.max_video_seconds_image_orientation,
            caps.max_video_seconds_video_orientation) == (3, 10, 30)
    assert not ADAPTER.signs_callbacks


def test_the_registry_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MOTIONRELAY_VIBEDREAM_API_KEY", "env-key")
    request = build_adapter("vibedream").build_submit(SPEC)
    assert request.headers["authorization"] == "Bearer env-key"
    assert str(request.url).startswith("https://api.vibedream.ai/")


# --------------------------------------------------------------------------- submit


def test_submit_request_matches_the_documented_body():
    request = ADAPTER.build_submit(SPEC)
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/api/v1/models/kling-v2.6-pro-motion/generate"
    assert request.headers["authorization"] == "Bearer vd-key"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "image": "https://s3.example/i.png?sig",
        "video": "https://s3.example/v.mp4?sig",
        "character_orientation": "video",
        "prompt": "dance",
        "negative_prompt": "blurry",
        "keep_original_sound": True,
    }


def test_optional_texts_are_left_out_and_sound_can_be_dropped():
    body = json.loads(ADAPTER.build_submit(replace(SPEC, prompt=None, negative_prompt=None,
                                                   keep_original_sound=False)).content)
    assert "prompt" not in body and "negative_prompt" not in body
    assert body["keep_original_sound"] is False


def test_standard_quality_is_refused():
    # The adapter contract: ProviderError only (final, like Novita's), never a ValueError.
    with pytest.raises(ProviderError, match="pro") as caught:
        ADAPTER.build_submit(replace(SPEC, quality="std"))
    assert (caught.value.provider, caught.value.code, caught.value.retryable) == (
        "vibedream", "provider_validation_error", False)


SUBMIT_BODY = {"id": PID, "status": "processing", "statusUrl": f"{BASE}/api/v1/predictions/{PID}",
               "estimatedTime": "60-180s", "costCents": 37, "createdAt": "2025-01-15T12:00:00.000Z"}


def test_submit_response_yields_the_prediction_id():
    assert ADAPTER.parse_submit(respond(200, SUBMIT_BODY)) == PID


@pytest.mark.parametrize("http_status,body,code,retryable", [
    (400, {"error": "image is required"}, "provider_validation_error", False),
    (422, {"message": "invalid video"}, "provider_validation_error", False),
    (400, {"error": "Prompt flagged by content moderation"}, "provider_moderation", False),
    (401, {"error": "Invalid API key"}, "provider_unauthorized", True),
    (402, {"error": "Insufficient credits"}, "provider_insufficient_credits", True),
    (403, {"error": "Forbidden"}, "provider_forbidden", True),
    (404, {"error": "Model not found"}, "provider_not_found", True),
    (429, "Too Many Requests", "provider_rate_limited", True),
    (500, {"error": {"message": "boom"}}, "provider_error", True),
    (503, "", "provider_unavailable", True),
    (409, {"detail": "conflict"}, "provider_code_409", False),
    (200, {"status": "processing"}, "provider_bad_response", True),
    (201, "not json", "provider_bad_response", True),
])
def test_submit_failures_are_classified_by_http_status(http_status, body, code, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(http_status, body))
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.provider == "vibedream"


@pytest.mark.parametrize("body,message", [
    ({"error": "Insufficient credits"}, "Insufficient credits"),
    ({"error": {"message": "nested"}}, "nested"),
    ({"message": "plain"}, "plain"),
    ({"detail": "fastapi-style"}, "fastapi-style"),
    ("<html>nginx</html>", "HTTP 402"),
])
def test_undocumented_error_bodies_are_read_tolerantly(body, message):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(402, body, headers={"Retry-After": "3"}))
    assert caught.value.message == message and caught.value.retry_after == 3.0


# --------------------------------------------------------------------------- status


def test_status_request():
    request = ADAPTER.build_status(PID)
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/api/v1/predictions/{PID}"
    assert request.headers["authorization"] == "Bearer vd-key"


def test_status_request_quotes_the_id():
    assert str(ADAPTER.build_status("a/b c").url) == f"{BASE}/api/v1/predictions/a%2Fb%20c"


def test_processing_is_running_without_progress():
    status = ADAPTER.parse_status(respond(200, prediction("processing")))
    assert status.state is ProviderState.RUNNING
    assert (status.progress, status.eta_seconds, status.cost) == (None, None, None)


@pytest.mark.parametrize("state,expected", [
    ("starting", ProviderState.QUEUED), ("Processing", ProviderState.RUNNING),
    ("succeeded", ProviderState.SUCCEEDED), ("canceled", ProviderState.FAILED),
])
def test_undocumented_state_names_are_tolerated(state, expected):
    extra = {"outputs": [OUTPUT]} if expected is ProviderState.SUCCEEDED else {}
    assert ADAPTER.parse_status(respond(200, prediction(state, **extra))).state is expected


def test_completed_yields_the_first_output():
    body = prediction("completed", outputs=[OUTPUT, "https://assets.vibedream.ai/other.mp4"],
                      completedAt="2025-01-15T12:00:30.000Z")
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.SUCCEEDED
    assert status.output_url == OUTPUT and status.progress == 100


@pytest.mark.parametrize("outputs", [OUTPUT, [{"url": OUTPUT}], ["", OUTPUT]])
def test_output_shapes_are_read_tolerantly(outputs):
    assert ADAPTER.parse_status(respond(200, prediction("completed", outputs=outputs))).output_url == OUTPUT


@pytest.mark.parametrize("outputs", [None, [], [""], [None], {"video": OUTPUT}])
def test_completed_without_outputs_is_a_failure(outputs):
    status = ADAPTER.parse_status(respond(200, prediction("completed", outputs=outputs)))
    assert status.state is ProviderState.FAILED and status.error_code == "provider_no_output"


def test_failed_for_moderation_is_specific():
    body = prediction("failed",
                      error="Your request was flagged by content moderation. Please modify your prompt.")
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.FAILED
    assert status.error_code == "provider_moderation"
    assert status.error_message.startswith("Your request was flagged")


def test_failed_carries_the_error():
    status = ADAPTER.parse_status(respond(200, prediction("failed", error="No character found")))
    assert (status.error_code, status.error_message) == ("provider_failed", "No character found")
    assert ADAPTER.parse_status(respond(200, prediction("failed"))).error_message


def test_cost_and_eta_are_read_when_a_status_carries_them():
    # Documented at submit only; read tolerantly should a status response carry them too.
    body = prediction("processing", costCents=37, estimatedTime="60-180s")
    status = ADAPTER.parse_status(respond(200, body))
    assert status.cost == {"cents": 37} and status.eta_seconds == 60.0
    done = ADAPTER.parse_status(respond(200, prediction("completed", outputs=[OUTPUT], costCents=37)))
    assert done.cost == {"cents": 37}


@pytest.mark.parametrize("value,seconds", [
    ("60-180s", 60.0), ("90s", 90.0), ("2-3 min", 120.0), (45, 45.0),
    ("soon", None), (None, None), (True, None),
])
def test_estimated_time_parsing(value, seconds):
    status = ADAPTER.parse_status(respond(200, prediction("processing", estimatedTime=value)))
    assert status.eta_seconds == seconds


@pytest.mark.parametrize("cost", ["37", -1, True, None])
def test_unusable_cost_is_ignored(cost):
    assert ADAPTER.parse_status(respond(200, prediction("processing", costCents=cost))).cost is None


@pytest.mark.parametrize("http_status,body,code,retryable", [
    (404, {"error": "Prediction not found"}, "provider_not_found", False),
    (401, {"error": "Invalid API key"}, "provider_unauthorized", True),
    (429, "", "provider_rate_limited", True),
    (500, "oops", "provider_error", True),
    (200, prediction("exploded"), "provider_bad_response", True),
    (200, "<html></html>", "provider_bad_response", True),
])
def test_status_errors(http_status, body, code, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_status(respond(http_status, body))
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


# --------------------------------------------------------------------------- callbacks


def test_callbacks_are_always_rejected():
    with pytest.raises(CallbackRejected, match="does not send callbacks"):
        ADAPTER.verify_callback({}, json.dumps(prediction("completed")).encode(), time.time())


def test_submit_details_carry_the_documented_cost_and_eta():
    details = ADAPTER.submit_details(respond(200, SUBMIT_BODY))
    assert details.cost == {"cents": 37}
    assert details.eta_seconds == 60.0  # "60-180s": the earliest the result can be there
    assert ADAPTER.submit_details(respond(500, {"error": "boom"})) is None
