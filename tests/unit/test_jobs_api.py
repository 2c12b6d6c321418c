"""Cancel and listing through the API function, tenant-scoped."""

from __future__ import annotations

import json

import pytest

import api_handler
from conftest import DEV_KEY, FakeContext, load_event, queued_messages
from motionrelay.domain.job import ProviderState, ProviderStatus
from test_api import get_job, post_job, sample_request

OTHER_KEY = "mr_other_tenant_key_abcdefghijkl"


@pytest.fixture
def other_tenant(aws):
    from motionrelay.apikeys import put_key

    put_key(OTHER_KEY, tenant_id="tenant-b", name="other")


def call(method: str, path: str, query: str = "", key: str = DEV_KEY) -> tuple[int, dict]:
    event = load_event("api_get_job.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    event.pop("pathParameters", None)
    event["rawQueryString"] = query
    event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&")) if query else None
    event["headers"]["authorization"] = f"Bearer {key}"
    response = api_handler.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


def test_cancel_stops_polling_and_ignores_late_results(aws, kie):
    from motionrelay.infra.jobs_table import JobStore
    from motionrelay.lifecycle import apply

    job = post_job(sample_request())[1]
    status, canceled = call("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 200 and canceled["status"] == "canceled" and canceled["completed_at"]

    import time

    assert list(JobStore().due_jobs(time.time() + 86400)) == []  # no more polling
    late = ProviderStatus(ProviderState.SUCCEEDED, output_url="https://cdn.kie.example/r/out.mp4")
    assert apply(job["id"], late) is None
    assert get_job(job["id"])[1]["status"] == "canceled"
    assert queued_messages(aws["transfer_queue_url"]) == []  # never transferred


def test_cancelling_a_finished_job_is_409(aws, kie):
    from motionrelay.lifecycle import fail

    job = post_job(sample_request())[1]
    fail(job["id"], "timeout", "deadline", event="deadline_passed")
    status, body = call("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 409 and body["error"]["code"] == "job_finished"
    assert call("POST", f"/v1/jobs/{job['id']}/cancel")[0] == 409


def test_a_job_canceled_while_its_video_is_copied_keeps_no_output(aws, kie_cdn, monkeypatch):
    import motionrelay.transfer as transfer
    from motionrelay.lifecycle import apply

    job = post_job(sample_request())[1]
    apply(job["id"], ProviderStatus(ProviderState.SUCCEEDED, output_url="https://cdn.kie.example/r/out.mp4"))
    real_copy = transfer._copy

    def copy_then_cancel(*args, **kwargs):
        stored = real_copy(*args, **kwargs)
        assert call("POST", f"/v1/jobs/{job['id']}/cancel")[0] == 200
        return stored

    monkeypatch.setattr(transfer, "_copy", copy_then_cancel)
    assert transfer.transfer_job(job["id"]) == "skipped"
    from motionrelay.infra.aws import client

    assert client("s3").list_objects_v2(Bucket="media", Prefix="outputs/").get("KeyCount") == 0
    assert get_job(job["id"])[1]["status"] == "canceled"


def test_other_tenants_jobs_are_404_on_every_route(aws, kie, other_tenant):
    job = post_job(sample_request())[1]
    for method, path in (("GET", f"/v1/jobs/{job['id']}"), ("POST", f"/v1/jobs/{job['id']}/cancel")):
        status, body = call(method, path, key=OTHER_KEY)
        assert (status, body["error"]["code"]) == (404, "not_found")
    assert call("GET", "/v1/jobs", key=OTHER_KEY)[1]["jobs"] == []
    assert get_job(job["id"])[1]["status"] == "queued"  # the failed cancel changed nothing


def test_listing_is_newest_first_with_an_opaque_cursor(aws, kie, other_tenant):
    ids = [post_job(sample_request())[1]["id"] for _ in range(5)]
    post_job(sample_request(), key=OTHER_KEY)
    seen, cursor = [], None
    while True:
        status, page = call("GET", "/v1/jobs", f"limit=2&cursor={cursor}" if cursor else "limit=2")
        assert status == 200 and len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


def test_listing_filters_by_status(aws, kie):
    first, second = (post_job(sample_request())[1]["id"] for _ in range(2))
    call("POST", f"/v1/jobs/{first}/cancel")
    assert [j["id"] for j in call("GET", "/v1/jobs", "status=canceled")[1]["jobs"]] == [first]
    assert [j["id"] for j in call("GET", "/v1/jobs", "status=queued&limit=1")[1]["jobs"]] == [second]


@pytest.mark.parametrize("query,field", [
    ("status=done", "status"), ("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
    ("cursor=not-a-cursor", "cursor"),
])
def test_bad_listing_parameters(aws, kie, query, field):
    status, body = call("GET", "/v1/jobs", query)
    assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_request", field)


def test_another_tenants_cursor_is_refused(aws, kie, other_tenant):
    for _ in range(2):
        post_job(sample_request(), key=OTHER_KEY)
    cursor = call("GET", "/v1/jobs", "limit=1", key=OTHER_KEY)[1]["next_cursor"]
    status, body = call("GET", "/v1/jobs", f"cursor={cursor}")
    assert (status, body["error"]["field"]) == (400, "cursor")
