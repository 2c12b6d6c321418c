"""The API function through real-shaped API Gateway v2 events (events/), moto and a fake Kie."""

from __future__ import annotations

import json

import pytest

import api_handler
from conftest import DEV_KEY, SAMPLES, FakeContext, data_uri, load_event


def post_job(body: dict | str, key: str | None = DEV_KEY) -> tuple[int, dict]:
    event = load_event("api_post_job.json")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    if key is None:
        del event["headers"]["authorization"]
    else:
        event["headers"]["authorization"] = f"Bearer {key}"
    response = api_handler.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


def get_job(job_id: str, key: str = DEV_KEY) -> tuple[int, dict]:
    event = load_event("api_get_job.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/jobs/{job_id}"
    event["pathParameters"] = {"id": job_id}
    event["headers"]["authorization"] = f"Bearer {key}"
    response = api_handler.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


def sample_request(**overrides) -> dict:
    body = {
        "image": data_uri(SAMPLES / "character.png", "image/png"),
        "video": data_uri(SAMPLES / "motion.mp4", "video/mp4"),
        "character_orientation": "image",
        "quality": "std",
        "prompt": "a dancer on a rooftop",
    }
    body.update(overrides)
    return body


def job_items() -> list[dict]:
    from motionrelay.infra.aws import client

    items = client("dynamodb").scan(TableName="jobs")["Items"]
    return [i for i in items if i["pk"]["S"].startswith("JOB#")]


def test_post_job_stages_inputs_and_submits_to_kie(aws, kie):
    status, job = post_job(sample_request())

    assert status == 202
    assert job["status"] == "queued"
    assert job["provider"] == "kie"
    assert job["provider_task_id"].startswith("task_kling-2.6_")
    assert job["attempts"][0]["outcome"] == "submitted"
    # The normalised request keeps no base64 blob, only what the inputs were.
    assert "base64" not in json.dumps(job["request"])
    assert job["request"]["image"]["content_type"] == "image/png"
    assert job["request"]["video"]["content_type"] == "video/mp4"

    [sent] = kie.tasks.values()
    assert sent["model"] == "kling-2.6/motion-control"
    assert sent["input"]["mode"] == "720p"
    assert sent["input"]["character_orientation"] == "image"
    assert sent["input"]["prompt"] == "a dancer on a rooftop"
    # Inputs reach Kie as presigned GETs of the staged copies.
    assert "/inputs/" in sent["input"]["input_urls"][0] and "Signature" in sent["input"]["input_urls"][0]
    assert sent["input"]["video_urls"][0].split("?")[0].endswith("/video.mp4")
    assert sent["callBackUrl"].startswith(f"https://api.motionrelay.example/v1/callbacks/kie/{job['id']}?token=")


def test_pro_quality_maps_to_1080p(aws, kie):
    status, _ = post_job(sample_request(quality="pro"))
    assert status == 202
    assert next(iter(kie.tasks.values()))["input"]["mode"] == "1080p"


@pytest.mark.parametrize("key", [None, "wrong-key", ""])
def test_requests_without_a_valid_key_are_refused(aws, kie, key):
    status, body = post_job(sample_request(), key=key)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert kie.calls == [] and job_items() == []


@pytest.mark.parametrize("body,code,field", [
    ("{not json", "invalid_request", None),
    ("[]", "invalid_request", None),
    ({"video": "https://x.example/v.mp4"}, "invalid_request", "image"),
    ({"image": 5, "video": "https://x.example/v.mp4"}, "invalid_request", "image"),
])
def test_malformed_requests_are_refused_before_anything_happens(aws, kie, body, code, field):
    status, response = post_job(body)
    assert status == 400
    assert response["error"]["code"] == code
    assert response["error"].get("field") == field
    assert kie.calls == [] and job_items() == []


@pytest.mark.parametrize("overrides,status,code,field", [
    ({"quality": "ultra"}, 400, "invalid_request", "quality"),
    ({"character_orientation": "left"}, 400, "invalid_request", "character_orientation"),
    ({"prompt": "x" * 2501}, 400, "invalid_request", "prompt"),
    ({"keep_original_sound": "yes"}, 400, "invalid_request", "keep_original_sound"),
    ({"colour": "red"}, 400, "invalid_request", "colour"),
    ({"webhook_url": "http://example.com/hook"}, 400, "invalid_request", "webhook_url"),
    ({"metadata": {"x": "y" * 5000}}, 400, "invalid_request", "metadata"),
    # The field is the one to change for the named provider (or drop 'provider').
    ({"provider": "kie", "negative_prompt": "blurry"}, 422, "provider_cannot_serve", "negative_prompt"),
    ({"provider": "kie", "keep_original_sound": False}, 422, "provider_cannot_serve", "keep_original_sound"),
    ({"provider": "novita"}, 422, "provider_cannot_serve", "provider"),  # not in MOTIONRELAY_ROUTING
    ({"image": "data:image/png;base64,aGVsbG8gd29ybGQ="}, 415, "unsupported_media", "image"),
    ({"image": "data:image/png;base64,iVBORw0KGgo!!!"}, 400, "invalid_request", "image"),
    ({"video": "data:audio/mpeg;base64,SUQzBAAAAAAA"}, 415, "unsupported_media", "video"),
    ({"image": "ftp://example.com/a.png"}, 400, "invalid_request", "image"),
    ({"image": "http://example.com/a.png"}, 422, "forbidden_url", "image"),
    ({"image": "https://169.254.169.254/latest/meta-data/"}, 422, "forbidden_url", "image"),
])
def test_bad_fields_get_a_stable_code_naming_the_field(aws, kie, overrides, status, code, field):
    got_status, response = post_job(sample_request(**overrides))
    assert (got_status, response["error"]["code"], response["error"].get("field")) == (status, code, field)
    assert response["error"]["message"]
    assert kie.submits() == 0 and job_items() == []


def test_retryable_kie_refusal_keeps_the_job_pending_for_the_poller(aws, kie):
    kie.submit_code = 455  # Kie maintenance, answered as HTTP 200 with the code in the body
    status, job = post_job(sample_request())

    assert status == 202
    assert job["status"] == "queued" and job["provider_task_id"] is None
    assert job["attempts"][0]["outcome"] == "retryable_error"
    assert job["attempts"][0]["code"] == "provider_maintenance"


def test_final_kie_refusal_fails_the_job_with_the_reason(aws, kie):
    kie.submit_code = 422
    status, job = post_job(sample_request())
    assert status == 202
    assert job["status"] == "failed"
    assert job["error"]["code"] == "provider_validation_error"
    assert job["completed_at"]


def test_get_job_is_tenant_scoped_and_404_like_a_missing_one(aws, kie):
    from motionrelay.apikeys import put_key

    _, job = post_job(sample_request())
    put_key("mr_other_tenant_key_abcdefghijkl", tenant_id="tenant-b", name="other")

    assert get_job(job["id"])[0] == 200
    other_status, other_body = get_job(job["id"], key="mr_other_tenant_key_abcdefghijkl")
    missing_status, missing_body = get_job("job_doesnotexist")
    assert other_status == missing_status == 404
    assert other_body["error"]["code"] == missing_body["error"]["code"] == "not_found"


def test_unknown_route_uses_the_error_shape(aws):
    event = load_event("api_get_job.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/nothing"
    response = api_handler.lambda_handler(event, FakeContext())
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "not_found"
