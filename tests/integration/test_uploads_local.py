"""POST /v1/uploads over HTTP in the local stack: PUT the files to the presigned URLs (moto's
S3 server), run a job on `upload:<id>` inputs to the end, and refuse a bad one before Kie."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from motionrelay_local.stack import LocalStack

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def upload(api: httpx.Client, data: bytes, content_type: str) -> str:
    created = api.post("/v1/uploads", json={"content_type": content_type, "size_bytes": len(data)})
    assert created.status_code == 201, created.text
    body = created.json()
    put = httpx.put(body["put_url"], content=data, headers={"Content-Type": content_type}, timeout=30,
                    trust_env=False)
    assert put.status_code == 200, put.text
    return body["id"]


def test_a_job_runs_on_uploaded_inputs(stack: LocalStack, api: httpx.Client):
    image = upload(api, (SAMPLES / "character.png").read_bytes(), "image/png")
    video = upload(api, (SAMPLES / "motion.mp4").read_bytes(), "video/mp4")

    created = api.post("/v1/jobs", json={"image": image, "video": video, "quality": "std"})
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["request"]["image"]["source"] == job["request"]["video"]["source"] == "upload"

    deadline = time.monotonic() + 60
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = api.get(f"/v1/jobs/{job['id']}").json()
    assert job["status"] == "succeeded", job.get("error")


def test_an_uploaded_video_that_is_too_short_is_refused(stack: LocalStack, api: httpx.Client):
    from tests.unit import mediagen

    video = upload(api, mediagen.video(2), "video/mp4")
    image = upload(api, (SAMPLES / "character.png").read_bytes(), "image/png")
    refused = api.post("/v1/jobs", json={"image": image, "video": video, "quality": "std"})
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "input_too_short", "field": "video",
        "message": "'video' is 2.0 s long; it must be at least 3 s."}
