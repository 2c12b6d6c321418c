"""POST /v1/uploads and `upload:<id>` inputs, through the API handler with moto."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest

import api_handler
import mediagen
from conftest import DEV_KEY, SAMPLES, FakeContext, load_event
from test_api import job_items, post_job, sample_request

MB = 1024 * 1024
OTHER_KEY = "mr_other_tenant_key_abcdefghijkl"
PNG = (SAMPLES / "character.png").read_bytes()
MP4 = (SAMPLES / "motion.mp4").read_bytes()


def post_upload(body: dict | str, key: str | None = DEV_KEY) -> tuple[int, dict]:
    event = load_event("api_post_upload.json")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    if key is None:
        del event["headers"]["authorization"]
    else:
        event["headers"]["authorization"] = f"Bearer {key}"
    response = api_handler.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


def new_upload(content_type: str, size: int, key: str = DEV_KEY) -> dict:
    status, body = post_upload({"content_type": content_type, "size_bytes": size}, key=key)
    assert status == 201, body
    return body


def put(upload: dict, data: bytes, content_type: str) -> None:
    """The client's PUT to the presigned URL (moto intercepts it)."""
    import requests

    response = requests.put(upload["put_url"], data=data, headers={"Content-Type": content_type}, timeout=10)
    assert response.status_code == 200, response.text


def uploaded(data: bytes, content_type: str, key: str = DEV_KEY) -> str:
    upload = new_upload(content_type, len(data), key=key)
    put(upload, data, content_type)
    return upload["id"]


@pytest.fixture
def other_tenant(aws):
    from motionrelay.apikeys import put_key

    put_key(OTHER_KEY, tenant_id="tenant-b", name="other")
    return OTHER_KEY


def object_body(key: str) -> bytes:
    from motionrelay.infra.aws import client

    return client("s3").get_object(Bucket="media", Key=key)["Body"].read()


def object_keys(prefix: str = "inputs/") -> list[str]:
    from motionrelay.infra.aws import client

    listing = client("s3").list_objects_v2(Bucket="media", Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


# --------------------------------------------------------------------------- creating


def test_create_upload_returns_a_signed_put_url(aws):
    before = time.time()
    status, body = post_upload({"content_type": "video/mp4", "size_bytes": 48_213_344})

    assert status == 201
    assert set(body) == {"id", "put_url", "expires_at"}
    upload_id = re.fullmatch(r"upload:([0-9a-f]{32})", body["id"]).group(1)
    assert f"/inputs/uploads/{upload_id}.mp4?" in body["put_url"]
    # S3 itself enforces the declared size and type: both are signed headers.
    assert "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost" in body["put_url"]
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()
    assert before + 3500 < expires < time.time() + 3700

    from motionrelay.infra.jobs_table import JobStore

    record = JobStore().get_upload(upload_id)
    assert (record.tenant_id, record.content_type, record.size_bytes) == ("tenant-a", "video/mp4", 48_213_344)
    assert record.key == f"inputs/uploads/{upload_id}.mp4"  # under the lifecycle-expired prefix
    assert record.usable_until > time.time() + 23 * 3600


def test_upload_records_are_not_jobs(aws):
    new_upload("image/png", 1000)
    event = load_event("api_get_job.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/jobs"
    event["headers"]["authorization"] = f"Bearer {DEV_KEY}"
    response = api_handler.lambda_handler(event, FakeContext())
    assert response["statusCode"] == 200 and json.loads(response["body"])["jobs"] == []
    assert job_items() == []


@pytest.mark.parametrize("body,status,code,field", [
    ({"content_type": "image/gif", "size_bytes": 100}, 415, "unsupported_media", "content_type"),
    ({"content_type": "audio/mpeg", "size_bytes": 100}, 415, "unsupported_media", "content_type"),
    ({"size_bytes": 100}, 400, "invalid_request", "content_type"),
    ({"content_type": 5, "size_bytes": 100}, 400, "invalid_request", "content_type"),
    ({"content_type": "image/png"}, 400, "invalid_request", "size_bytes"),
    ({"content_type": "image/png", "size_bytes": 0}, 400, "invalid_request", "size_bytes"),
    ({"content_type": "image/png", "size_bytes": -5}, 400, "invalid_request", "size_bytes"),
    ({"content_type": "image/png", "size_bytes": "100"}, 400, "invalid_request", "size_bytes"),
    ({"content_type": "image/png", "size_bytes": 1.5}, 400, "invalid_request", "size_bytes"),
    ({"content_type": "image/png", "size_bytes": True}, 400, "invalid_request", "size_bytes"),
    ({"content_type": "image/png", "size_bytes": 10 * MB + 1}, 413, "input_too_large", "size_bytes"),
    ({"content_type": "video/mp4", "size_bytes": 100 * MB + 1}, 413, "input_too_large", "size_bytes"),
    ({"content_type": "image/png", "size_bytes": 100, "name": "a.png"}, 400, "invalid_request", "name"),
    ("{nope", 400, "invalid_request", None),
    ("[1]", 400, "invalid_request", None),
    ("[" * 100_000, 400, "invalid_request", None),  # RecursionError in json.loads, not a 500
    ('{"content_type":' * 100_000, 400, "invalid_request", None),
], ids=lambda value: value[:40] + "..." if isinstance(value, str) and len(value) > 40 else None)
def test_bad_upload_requests_are_refused(aws, body, status, code, field):
    got_status, response = post_upload(body)
    assert (got_status, response["error"]["code"], response["error"].get("field")) == (status, code, field)
    assert object_keys() == []


def test_the_largest_video_any_routed_provider_takes_is_accepted(aws):
    assert post_upload({"content_type": "video/mp4", "size_bytes": 100 * MB})[0] == 201
    assert post_upload({"content_type": "image/jpeg", "size_bytes": 10 * MB})[0] == 201


def test_uploads_need_an_api_key(aws):
    status, body = post_upload({"content_type": "image/png", "size_bytes": 100}, key=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"


# --------------------------------------------------------------------------- using


def test_uploads_are_copied_to_the_job_and_the_copy_is_what_the_provider_reads(aws, kie):
    image_id, video_id = uploaded(PNG, "image/png"), uploaded(MP4, "video/mp4")

    status, job = post_job(sample_request(image=image_id, video=video_id))

    assert status == 202, job
    assert job["request"]["image"] == {"source": "upload", "upload_id": image_id, "content_type": "image/png",
                                       "size_bytes": len(PNG), "format": "png", "width": 480, "height": 720}
    assert job["request"]["video"]["source"] == "upload"
    assert job["request"]["video"]["duration_seconds"] == pytest.approx(4.0, abs=0.1)
    sent = next(iter(kie.tasks.values()))["input"]
    # The provider reads the job's own server-side copy (presigned), not the upload.
    assert f"/inputs/{job['id']}/image.png?" in sent["input_urls"][0]
    assert f"/inputs/{job['id']}/video.mp4?" in sent["video_urls"][0]
    assert sorted(object_keys(f"inputs/{job['id']}/")) == [f"inputs/{job['id']}/image.png",
                                                            f"inputs/{job['id']}/video.mp4"]
    assert object_body(f"inputs/{job['id']}/image.png") == PNG
    assert len(object_keys("inputs/uploads/")) == 2  # the client's uploads are left as they were
    # An upload can serve more than one job while it lasts.
    assert post_job(sample_request(image=image_id))[0] == 202


def test_an_upload_replaced_after_the_job_was_made_does_not_change_what_the_provider_gets(aws, kie):
    """TOCTOU: the presigned PUT stays valid for an hour, so the client can overwrite the upload
    after it was probed. The provider is given the job's copy, made from the probed version."""
    import requests

    upload = new_upload("image/png", len(PNG))
    put(upload, PNG, "image/png")
    status, job = post_job(sample_request(image=upload["id"]))
    assert status == 202, job

    swapped = bytes(len(PNG))  # same size, so S3 would take it on the same presigned PUT
    put(upload, swapped, "image/png")
    assert object_body(f"inputs/uploads/{upload['id'].split(':')[1]}.png") == swapped

    image_url = next(iter(kie.tasks.values()))["input"]["input_urls"][0]
    assert requests.get(image_url, timeout=10).content == PNG  # moto serves the presigned GET


def test_the_copy_is_conditional_on_the_etag_that_was_checked(aws, kie, monkeypatch):
    """Replaced between the HEAD and the copy: S3 answers 412 to CopySourceIfMatch (moto does
    not enforce it, so a spy stands in for S3 here) and the job is refused, nothing written."""
    from botocore.exceptions import ClientError

    from motionrelay.infra.aws import client

    ref = uploaded(PNG, "image/png")
    s3 = client("s3")
    etag = s3.head_object(Bucket="media", Key=f"inputs/uploads/{ref.split(':')[1]}.png")["ETag"]
    seen = []

    def copy_object(**kwargs):
        seen.append(kwargs)
        raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-"
                                     "conditions you specified did not hold"},
                           "ResponseMetadata": {"HTTPStatusCode": 412}}, "CopyObject")

    monkeypatch.setattr(s3, "copy_object", copy_object)
    status, body = post_job(sample_request(image=ref))

    assert seen and seen[0]["CopySourceIfMatch"] == etag
    assert seen[0]["CopySource"] == {"Bucket": "media", "Key": f"inputs/uploads/{ref.split(':')[1]}.png"}
    assert (status, body["error"]["code"], body["error"]["field"]) == (409, "upload_changed", "image")
    assert kie.calls == [] and job_items() == []


def test_another_tenants_upload_is_exactly_like_an_unknown_one(aws, kie, other_tenant):
    theirs = uploaded(PNG, "image/png", key=other_tenant)
    unknown = "upload:" + "0" * 32

    status_a, body_a = post_job(sample_request(image=theirs))
    status_b, body_b = post_job(sample_request(image=unknown))

    assert status_a == status_b == 422
    assert body_a["error"]["code"] == body_b["error"]["code"] == "input_unreachable"
    assert body_a["error"]["field"] == body_b["error"]["field"] == "image"
    assert (body_a["error"]["message"].replace(theirs, "ID")
            == body_b["error"]["message"].replace(unknown, "ID"))
    # ...and it still works for its owner.
    assert post_job(sample_request(image=theirs), key=other_tenant)[0] == 202
    assert kie.submits() == 1


def test_an_upload_not_yet_put_is_not_completed(aws, kie):
    pending = new_upload("video/mp4", len(MP4))
    status, body = post_job(sample_request(video=pending["id"]))
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "input_unreachable", "video")
    assert "not completed" in body["error"]["message"]
    assert kie.calls == [] and job_items() == []


def test_an_upload_larger_than_declared_is_refused(aws, kie):
    # S3 refuses such a PUT (Content-Length is signed); moto does not, so the re-check shows.
    upload = new_upload("image/png", 1000)
    put(upload, PNG, "image/png")
    status, body = post_job(sample_request(image=upload["id"]))
    assert (status, body["error"]["code"], body["error"]["field"]) == (413, "input_too_large", "image")
    assert "declared" in body["error"]["message"]
    assert kie.calls == [] and job_items() == []


def test_an_expired_upload_is_unknown_even_before_ttl_deletes_it(aws, kie):
    from motionrelay.infra.aws import client

    image_id = uploaded(PNG, "image/png")
    # DynamoDB's TTL deletes lazily: the record's own expiry is what counts.
    client("dynamodb").update_item(
        TableName="jobs", Key={"pk": {"S": f"UPLOAD#{image_id.split(':')[1]}"}, "sk": {"S": "UPLOAD"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
    status, body = post_job(sample_request(image=image_id))
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "input_unreachable", "image")
    assert kie.calls == [] and job_items() == []


@pytest.mark.parametrize("declared,data,field,code", [
    ("image/png", PNG, "video", "unsupported_media"),  # an image upload given as the video
    ("image/png", mediagen.image(fmt="JPEG"), "image", "unsupported_media"),  # declared PNG, is JPEG
    ("image/png", mediagen.TEXT, "image", "unsupported_media"),
    ("video/mp4", mediagen.MP3, "video", "unsupported_media"),
    ("video/mp4", mediagen.video(2), "video", "input_too_short"),
])
def test_uploaded_content_is_checked_like_any_input(aws, kie, declared, data, field, code):
    ref = uploaded(data, declared)
    status, body = post_job(sample_request(**{field: ref}))
    assert (body["error"]["code"], body["error"]["field"]) == (code, field)
    assert status in (415, 422)
    assert kie.calls == [] and job_items() == []
    # The client's upload is left in place (the lifecycle rule expires it); it can be fixed and reused.
    assert len(object_keys("inputs/uploads/")) == 1


def test_staged_inputs_of_a_refused_job_are_deleted_but_uploads_are_kept(aws, kie):
    video_id = uploaded(mediagen.video(2), "video/mp4")
    status, _ = post_job(sample_request(video=video_id))  # the image is a data: URI, staged first
    assert status == 422
    assert object_keys() == object_keys("inputs/uploads/") != []
