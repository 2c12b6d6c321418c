"""The whole gateway on the local stack, over HTTP: a sample job from POST to the video in
S3, then what a hostile or repetitive caller can do to it afterwards (forged and replayed
provider callbacks, no credentials, someone else's job id)."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from motionrelay_local.stack import LocalStack

pytestmark = pytest.mark.integration

JOB_TIMEOUT = 60.0
# Headers httpx sets from the request itself; everything else is replayed as sent.
HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


def wait_for_terminal(api: httpx.Client, job_id: str, timeout: float = JOB_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        resp = api.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job = resp.json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        time.sleep(0.25)


def assert_error_shape(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def s3_client(stack: LocalStack):
    return stack.client("s3")


@pytest.fixture(scope="module")
def finished_job(api: httpx.Client, sample_request: dict) -> dict:
    resp = api.post("/v1/jobs", json=sample_request)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] in ("queued", "running")
    assert job["id"] and job["provider"] == "kie"
    for field in ("progress", "output", "error", "created_at", "updated_at"):
        assert field in job
    return wait_for_terminal(api, job["id"])


@pytest.fixture(scope="module")
def genuine_callback(stack: LocalStack, finished_job: dict) -> dict:
    """The last callback the sandbox delivered for this job's task (the completion)."""
    task_id = finished_job["provider_task_id"]
    sent = [c for c in stack.sandbox.callbacks if c["provider"] == "kie" and c["task_id"] == task_id]
    assert sent, f"the sandbox sent no callback for task {task_id}"
    callback = sent[-1]
    assert callback["status"] == 200, callback
    return callback


def replay(stack: LocalStack, callback: dict, headers: dict[str, str]) -> httpx.Response:
    """POST a recorded callback again, to the same path and query on the local API."""
    url = urlsplit(callback["url"])
    target = url.path + (f"?{url.query}" if url.query else "")
    with httpx.Client(base_url=stack.api_url, timeout=30, trust_env=False) as client:
        return client.post(target, content=callback["body"], headers=headers)


def original_headers(callback: dict) -> dict[str, str]:
    return {k: v for k, v in callback["headers"].items() if k.lower() not in HOP_HEADERS}


def test_sample_job_succeeds_and_its_video_is_in_s3(stack: LocalStack, finished_job: dict):
    job = finished_job
    assert job["status"] == "succeeded", job.get("error")
    assert job["error"] is None and job["progress"] == 100
    output = job["output"]
    resp = httpx.get(output["url"], timeout=30, trust_env=False)
    assert resp.status_code == 200
    video = resp.content
    assert video[4:8] == b"ftyp", "not an MP4"
    assert hashlib.sha256(video).hexdigest() == output["sha256"]
    assert len(video) == output["size_bytes"]

    bucket, _, key = unquote(urlsplit(output["url"]).path).lstrip("/").partition("/")
    assert bucket == stack.bucket and key.startswith("outputs/")
    assert s3_client(stack).head_object(Bucket=bucket, Key=key)["ContentLength"] == len(video)


def test_forged_callbacks_are_refused_and_change_nothing(
    stack: LocalStack, api: httpx.Client, finished_job: dict, genuine_callback: dict
):
    before = api.get(f"/v1/jobs/{finished_job['id']}").json()
    headers = original_headers(genuine_callback)
    signature_name = next(k for k in headers if k.lower() == "x-webhook-signature")
    timestamp_name = next(k for k in headers if k.lower() == "x-webhook-timestamp")

    tampered = dict(headers)
    tampered[signature_name] = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    assert_error_shape(replay(stack, genuine_callback, tampered), 401)

    unsigned = {k: v for k, v in headers.items() if k not in (signature_name, timestamp_name)}
    assert_error_shape(replay(stack, genuine_callback, unsigned), 401)

    after = api.get(f"/v1/jobs/{finished_job['id']}").json()
    assert (after["status"], after["updated_at"]) == (before["status"], before["updated_at"])


def test_a_duplicated_callback_transfers_the_video_once(
    stack: LocalStack, api: httpx.Client, finished_job: dict, genuine_callback: dict
):
    job_id = finished_job["id"]
    resp = replay(stack, genuine_callback, original_headers(genuine_callback))
    assert 200 <= resp.status_code < 300, resp.text

    # Let anything the replay might have queued run: two poller ticks, then empty queues.
    time.sleep(2 * stack.poll_interval + 0.5)
    assert stack.wait_until_idle(timeout=30)
    assert stack.stats["transfer_invocations"][job_id] == 1

    listing = s3_client(stack).list_objects_v2(Bucket=stack.bucket, Prefix="outputs/")
    keys = [o["Key"] for o in listing.get("Contents", []) if job_id in o["Key"]]
    assert len(keys) == 1, keys
    assert keys[0] == unquote(urlsplit(finished_job["output"]["url"]).path).split("/", 2)[2]
    after = api.get(f"/v1/jobs/{job_id}").json()
    assert after["status"] == "succeeded" and after["updated_at"] == finished_job["updated_at"]


def test_reading_a_job_needs_an_api_key(anonymous: httpx.Client, finished_job: dict):
    assert_error_shape(anonymous.get(f"/v1/jobs/{finished_job['id']}"), 401)
    wrong = {"Authorization": "Bearer mr_not_a_real_key"}
    assert_error_shape(anonymous.get(f"/v1/jobs/{finished_job['id']}", headers=wrong), 401)


def test_an_unknown_job_is_404(api: httpx.Client, finished_job: dict):
    real = finished_job["id"]
    unknown = real[:-4] + ("0000" if not real.endswith("0000") else "1111")
    assert_error_shape(api.get(f"/v1/jobs/{unknown}"), 404)


def test_the_gateway_itself_404s_unrouted_paths_and_413s_huge_bodies(anonymous: httpx.Client):
    resp = anonymous.get("/no/such/route")
    assert resp.status_code == 404 and resp.json() == {"message": "Not Found"}
    resp = anonymous.delete("/v1/jobs/job_x")  # a path the API has, with a method it has not
    assert resp.status_code == 404 and resp.json() == {"message": "Not Found"}
    resp = anonymous.post("/v1/jobs", content=b"x" * (10 * 1024 * 1024 + 1),
                          headers={"content-type": "application/json"})
    assert resp.status_code == 413


def test_the_poller_runs_on_its_schedule(stack: LocalStack):
    before = stack.stats["poller_invocations"]
    time.sleep(3 * stack.poll_interval + 0.3)
    assert stack.stats["poller_invocations"] >= before + 2
    assert stack.stats["handler_errors"].total() == 0, stack.stats["handler_errors"]


def test_idempotent_replay_over_http(api: httpx.Client, stack: LocalStack, sample_request: dict) -> None:
    headers = {"Idempotency-Key": f"it-{time.time_ns()}"}
    submits_before = stack.sandbox.requests[("kie", "createTask")]
    first = api.post("/v1/jobs", json=sample_request, headers=headers)
    replay = api.post("/v1/jobs", json=sample_request, headers=headers)
    other_body = api.post("/v1/jobs", json={**sample_request, "prompt": "another"}, headers=headers)

    assert first.status_code == replay.status_code == 202
    assert replay.json()["id"] == first.json()["id"]
    assert replay.headers["idempotent-replayed"] == "true"
    assert assert_error_shape(other_body, 409)["code"] == "idempotency_conflict"
    assert stack.sandbox.requests[("kie", "createTask")] == submits_before + 1


def test_cancel_and_list_over_http(api: httpx.Client, stack: LocalStack, sample_request: dict) -> None:
    stack.sandbox.configure("kie", state_seconds=5.0)  # keep the job running long enough to cancel
    try:
        job = api.post("/v1/jobs", json=sample_request).json()
        canceled = api.post(f"/v1/jobs/{job['id']}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
        assert assert_error_shape(api.post(f"/v1/jobs/{job['id']}/cancel"), 409)["code"] == "job_finished"
        listed = api.get("/v1/jobs", params={"status": "canceled", "limit": 5}).json()
        assert job["id"] in [j["id"] for j in listed["jobs"]]
    finally:
        stack.sandbox.configure("kie", state_seconds=0.2)
