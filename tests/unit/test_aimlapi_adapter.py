"""The AI/ML API adapter against its documented wire format (providers.md section 2), no I/O."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from motionrelay.domain.job import ProviderState
from motionrelay.providers.aimlapi import MODEL, MODEL_PRO_ONLY, AimlapiAdapter
from motionrelay.providers.base import CallbackRejected, ProviderError, SubmitSpec
from motionrelay.registry import build_adapter

ADAPTER = AimlapiAdapter(api_key="k-123", base_url="https://api.aimlapi.com/")
LEGACY = AimlapiAdapter(api_key="k-123", base_url="https://api.aimlapi.com", model=MODEL_PRO_ONLY)
SPEC = SubmitSpec(image_url="https://s3.example/i.png?sig", video_url="https://s3.example/v.mp4?sig",
                  character_orientation="image", quality="std", prompt="a parrot flies in",
                  negative_prompt=None, keep_original_sound=False, callback_url=None)


def respond(status: int, body, headers=None) -> httpx.Response:
    request = httpx.Request("GET", "https://api.aimlapi.com/v2/video/generations")
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, request=request, headers=headers)
    return httpx.Response(status, text=body, request=request, headers=headers)


def error(status: int, message, **extra) -> dict:
    """The documented error body: message, path, requestId, statusCode, timestamp."""
    return {"message": message, "path": "/v2/video/generations", "requestId": "798b860e-98c2-4e8e",
            "statusCode": status, "timestamp": "2026-03-11T07:13:27.813Z", **extra}


def generation(status: str, **extra) -> dict:
    return {"id": "NVOeetazzu2Xlca6ghTMx", "status": status, "video": None, "error": None, "meta": None,
            **extra}


def spec(**changes) -> SubmitSpec:
    return SubmitSpec(**{**SPEC.__dict__, **changes})


# --------------------------------------------------------------------------- submit


def test_submit_request_matches_the_newer_schema():
    request = ADAPTER.build_submit(SPEC)
    assert request.method == "POST"
    assert str(request.url) == "https://api.aimlapi.com/v2/video/generations"
    assert request.headers["authorization"] == "Bearer k-123"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "klingai/video-v2-6-motion-control",
        "image_url": "https://s3.example/i.png?sig",
        "video_url": "https://s3.example/v.mp4?sig",
        "character_orientation": "image",
        "keep_audio": False,
        "mode": "std",
        "prompt": "a parrot flies in",
    }


def test_pro_quality_is_mode_pro_and_empty_prompt_is_left_out():
    body = json.loads(ADAPTER.build_submit(spec(quality="pro", prompt=None, keep_original_sound=True,
                                                character_orientation="video")).content)
    assert body["mode"] == "pro" and body["keep_audio"] is True and body["character_orientation"] == "video"
    assert "prompt" not in body and "negative_prompt" not in body


def test_older_model_id_sends_no_mode_and_offers_only_pro():
    body = json.loads(LEGACY.build_submit(spec(quality="pro")).content)
    assert body["model"] == "klingai/video-v2-6-pro-motion-control"
    assert "mode" not in body
    # the two schemas default orientation differently: it is always explicit
    assert body["character_orientation"] == "image" and body["keep_audio"] is False
    assert LEGACY.capabilities.qualities == frozenset({"pro"})
    assert ADAPTER.capabilities.qualities == frozenset({"std", "pro"})


def test_older_model_id_refuses_std_instead_of_rendering_pro():
    with pytest.raises(ProviderError) as caught:
        LEGACY.build_submit(spec(quality="std"))
    assert caught.value.code == "provider_quality_unavailable" and caught.value.retryable


def test_capabilities_follow_the_docs():
    caps = ADAPTER.capabilities
    assert (caps.callbacks, caps.callback_auth, caps.inline_base64) == (False, "none", True)
    assert (caps.prompt, caps.negative_prompt, caps.sound_control) == (True, False, True)
    assert not caps.progress
    assert (caps.min_video_seconds, caps.max_video_seconds_image_orientation,
            caps.max_video_seconds_video_orientation) == (3, 10, 30)
    assert caps.max_video_bytes == 100 * 1024 * 1024 and caps.max_image_bytes == 10 * 1024 * 1024
    assert not ADAPTER.signs_callbacks


@pytest.mark.parametrize("env,expected_model,qualities", [
    (None, MODEL, {"std", "pro"}),
    ("", MODEL, {"std", "pro"}),
    (f"  {MODEL_PRO_ONLY}\n", MODEL_PRO_ONLY, {"pro"}),
    (MODEL, MODEL, {"std", "pro"}),
])
def test_the_registry_reads_the_model_from_the_environment(monkeypatch, env, expected_model, qualities):
    monkeypatch.setenv("MOTIONRELAY_AIMLAPI_API_KEY", "env-key")
    if env is None:
        monkeypatch.delenv("MOTIONRELAY_AIMLAPI_MODEL", raising=False)
    else:
        monkeypatch.setenv("MOTIONRELAY_AIMLAPI_MODEL", env)
    adapter = build_adapter("aimlapi", base_url="http://127.0.0.1:9/aimlapi/")
    assert adapter.model == expected_model and adapter.capabilities.qualities == qualities
    request = adapter.build_submit(spec(quality="pro"))
    assert str(request.url) == "http://127.0.0.1:9/aimlapi/v2/video/generations"
    assert request.headers["authorization"] == "Bearer env-key"
    assert json.loads(request.content)["model"] == expected_model
    assert ("mode" in json.loads(request.content)) is (expected_model == MODEL)


def test_default_base_url():
    assert str(AimlapiAdapter(api_key="k").build_status("x").url).startswith("https://api.aimlapi.com/")


@pytest.mark.parametrize("status,body", [
    (200, {"id": "NVOeetazzu2Xlca6ghTMx", "status": "queued"}),
    (201, {"id": " 60ac7c34-3224-4b14-8e7d-0aa0db708325 ", "status": "queued"}),
    (200, {"generation_id": "gen-1", "status": "waiting"}),
])
def test_submit_response_yields_the_id(status, body):
    expected = (body.get("id") or body.get("generation_id")).strip()
    assert ADAPTER.parse_submit(respond(status, body)) == expected


@pytest.mark.parametrize("http_status,body,code,retryable", [
    (400, error(400, "Body validation error!\ncharacter_orientation: Invalid enum value"),
     "provider_validation_error", False),
    (400, error(400, ["image_url must be a URL", "video_url should not be empty"]),
     "provider_validation_error", False),
    (400, error(400, "Prompt rejected by content moderation"), "provider_moderation", False),
    (401, error(401, "This request requires a valid API key."), "provider_unauthorized", True),
    (403, error(403, "You've run out of credits. Please top up your balance"),
     "provider_insufficient_credits", True),
    (403, error(403, "Access to this model is not allowed"), "provider_forbidden", True),
    (404, error(404, "Not Found"), "provider_not_found", True),
    (429, error("429", "Too Many Requests"), "provider_rate_limited", True),
    (500, error(500, "Internal server error"), "provider_error", True),
    (500, error(500, "The model is under maintenance, please contact us"), "provider_unavailable", True),
    (502, "<html>Bad gateway</html>", "provider_error", True),
    (503, error(503, "Service unavailable"), "provider_unavailable", True),
    (504, error(504, "Generation timeout"), "provider_timeout", True),
    (200, error(403, "You've run out of credits"), "provider_insufficient_credits", True),
    (200, {"status": "queued"}, "provider_bad_response", True),
    (200, "not json", "provider_bad_response", True),
    (200, ["NVOeetazzu2Xlca6ghTMx"], "provider_bad_response", True),
])
def test_submit_failures_are_classified(http_status, body, code, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(http_status, body))
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.http_status == http_status


def test_error_message_is_kept():
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(400, error(400, "Body validation error!\nimage_url: Required")))
    assert caught.value.message == "Body validation error!\nimage_url: Required"


@pytest.mark.parametrize("adapter", [ADAPTER, LEGACY], ids=["newer-id", "older-id"])
def test_a_rejected_model_id_is_a_config_fault_not_a_final_error(adapter):
    other = MODEL_PRO_ONLY if adapter is ADAPTER else MODEL
    message = (f"Body validation error!\nInvalid enum value. Expected '{other}', "
               f"received '{adapter.model}'")
    with pytest.raises(ProviderError) as caught:
        adapter.parse_submit(respond(400, error(400, message)))
    assert caught.value.code == "provider_model_rejected" and caught.value.retryable


def test_retry_after_is_kept():
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_submit(respond(429, error(429, "Too Many Requests"), headers={"Retry-After": "7"}))
    assert caught.value.retry_after == 7.0


# --------------------------------------------------------------------------- status


def test_status_request():
    request = ADAPTER.build_status("NVOeetazzu2Xlca6ghTMx")
    assert request.method == "GET"
    assert str(request.url) == "https://api.aimlapi.com/v2/video/generations?generation_id=NVOeetazzu2Xlca6ghTMx"
    assert request.headers["authorization"] == "Bearer k-123"


@pytest.mark.parametrize("status,expected", [
    ("queued", ProviderState.QUEUED), ("waiting", ProviderState.QUEUED), ("QUEUED", ProviderState.QUEUED),
    ("generating", ProviderState.RUNNING),
])
def test_states_map(status, expected):
    result = ADAPTER.parse_status(respond(200, generation(status)))
    assert result.state is expected and result.output_url is None and result.cost is None


def test_completed_reads_video_url_and_cost():
    body = generation("completed", video={"url": "https://cdn.aimlapi.com/generations/hedgehog/1.mp4"},
                      meta={"usage": {"credits_used": 120000, "usd_spent": 0.56}})
    status = ADAPTER.parse_status(respond(200, body))
    assert status.state is ProviderState.SUCCEEDED and status.progress == 100
    assert status.output_url == "https://cdn.aimlapi.com/generations/hedgehog/1.mp4"
    assert status.cost == {"usd": 0.56, "credits": 120000}


@pytest.mark.parametrize("meta,cost", [
    ({"usage": {"credits_used": 120000}}, {"credits": 120000}),
    ({"usage": {"usd_spent": 0.3}}, {"usd": 0.3}),
    ({"usage": None}, None),
    ({"usage": {"credits_used": "lots"}}, None),
    (None, None),
])
def test_cost_records_whatever_usage_reports(meta, cost):
    body = generation("completed", video={"url": "https://cdn.aimlapi.com/x.mp4"}, meta=meta)
    assert ADAPTER.parse_status(respond(200, body)).cost == cost


def test_usage_is_recorded_while_running_too():
    body = generation("generating", meta={"usage": {"credits_used": 5, "usd_spent": 0.01}})
    assert ADAPTER.parse_status(respond(200, body)).cost == {"usd": 0.01, "credits": 5}


def test_completed_tolerates_a_bare_video_url_string():
    body = generation("completed", video="https://cdn.aimlapi.com/y.mp4")
    assert ADAPTER.parse_status(respond(200, body)).output_url == "https://cdn.aimlapi.com/y.mp4"


@pytest.mark.parametrize("video", [None, {}, {"url": ""}, {"url": None}])
def test_completed_without_url_is_a_failure(video):
    status = ADAPTER.parse_status(respond(200, generation("completed", video=video)))
    assert status.state is ProviderState.FAILED and status.error_code == "provider_no_output"


@pytest.mark.parametrize("err,code,message", [
    ({"name": "GenerationError", "message": "face not found"}, "provider_failed",
     "GenerationError: face not found"),
    ({"name": "", "message": "face not found"}, "provider_failed", "face not found"),
    ("upstream exploded", "provider_failed", "upstream exploded"),
    ({"name": "Error", "message": "Content moderation: the image violates policy"}, "provider_moderation",
     "Error: Content moderation: the image violates policy"),
    (None, "provider_failed", "AI/ML API reported the generation as failed"),
])
def test_error_status_carries_the_reason(err, code, message):
    status = ADAPTER.parse_status(respond(200, generation("error", error=err)))
    assert status.state is ProviderState.FAILED
    assert (status.error_code, status.error_message) == (code, message)


@pytest.mark.parametrize("http_status,body,code,retryable", [
    (404, error(404, "Generation not found"), "provider_not_found", False),
    (400, error(400, "Query validation error!"), "provider_validation_error", True),
    (401, error(401, "This request requires a valid API key."), "provider_unauthorized", True),
    (403, error(403, "You've run out of credits"), "provider_insufficient_credits", True),
    (429, error(429, "Too Many Requests"), "provider_rate_limited", True),
    (500, "", "provider_error", True),
    (200, generation("exploded"), "provider_bad_response", True),
    (200, {"id": "x"}, "provider_bad_response", True),
])
def test_status_errors(http_status, body, code, retryable):
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse_status(respond(http_status, body))
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


# --------------------------------------------------------------------------- callbacks


def test_callbacks_are_always_rejected():
    with pytest.raises(CallbackRejected, match="does not send callbacks"):
        ADAPTER.verify_callback({}, json.dumps(generation("completed")).encode(), time.time())
