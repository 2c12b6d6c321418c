"""Kie callbacks through the webhook function: verified, re-fetched, applied once."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

import webhook_handler
from conftest import FakeContext, kie_signature, load_event, queued_messages
from test_api import post_job, sample_request


def callback_event(job: dict, kie, *, token: str | None = "from-submit", timestamp: str | None = None,
                   signature: str | None = "valid", task_id: str | None = None) -> dict:
    event = load_event("callback_kie.json")
    task_id = task_id or job["provider_task_id"]
    body = json.loads(event["body"])
    body["taskId"] = body["data"]["taskId"] = task_id
    event["body"] = json.dumps(body)
    path = f"/v1/callbacks/kie/{job['id']}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"provider": "kie", "job_id": job["id"]}
    if token == "from-submit":
        token = parse_qs(urlsplit(next(iter(kie.tasks.values()))["callBackUrl"]).query)["token"][0]
    if token is None:
        event.pop("queryStringParameters", None)
        event["rawQueryString"] = ""
    else:
        event["queryStringParameters"] = {"token": token}
        event["rawQueryString"] = f"token={token}"
    timestamp = timestamp or str(int(time.time()))
    event["headers"]["x-webhook-timestamp"] = timestamp
    if signature == "valid":
        signature = kie_signature(task_id, timestamp)
    if signature is None:
        del event["headers"]["x-webhook-signature"]
        del event["headers"]["x-webhook-timestamp"]
    else:
        event["headers"]["x-webhook-signature"] = signature
    return event


def deliver(event: dict) -> tuple[int, dict]:
    response = webhook_handler.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def placed_job(aws, kie):
    status, job = post_job(sample_request())
    assert status == 202 and job["status"] == "queued"
    return job


def stored(job_id: str):
    from motionrelay.infra.jobs_table import JobStore

    return JobStore().get(job_id)


def test_signed_callback_refetches_and_queues_one_transfer(aws, kie, placed_job):
    kie.state = "success"
    status, body = deliver(callback_event(placed_job, kie))

    assert status == 200 and body["applied"] is True
    job = stored(placed_job["id"])
    assert job.phase.value == "transferring" and job.output_source_url.endswith("/r/out.mp4")
    assert job.cost == {"credits": 55}
    assert ("GET", "/api/v1/jobs/recordInfo") in kie.calls  # the callback body was not trusted
    assert len(queued_messages(aws["transfer_queue_url"])) == 1


def test_duplicate_callbacks_are_harmless(aws, kie, placed_job):
    kie.state = "success"
    event = callback_event(placed_job, kie)
    first, second = deliver(event), deliver(event)
    assert first[0] == second[0] == 200
    assert second[1]["applied"] is False
    assert len(queued_messages(aws["transfer_queue_url"])) == 1


def test_callback_body_is_not_trusted_over_the_provider(aws, kie, placed_job):
    kie.state = "generating"  # the body claims success; Kie says it is still generating
    status, body = deliver(callback_event(placed_job, kie))
    assert status == 200 and body["applied"] is True
    assert stored(placed_job["id"]).phase.value == "running"
    assert queued_messages(aws["transfer_queue_url"]) == []


@pytest.mark.parametrize("kwargs", [
    {"signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
    {"signature": None},
    {"timestamp": str(int(time.time()) - 3600)},
    {"timestamp": "not-a-number"},
    {"signature": kie_signature("task_other", str(int(time.time())))},
    {"token": "guessed-token"},
    {"task_id": "task_kling-2.6_9999999999999"},
])
def test_forged_callbacks_are_refused_and_change_nothing(aws, kie, placed_job, kwargs):
    kie.state = "success"
    before = stored(placed_job["id"])
    calls_before = len(kie.calls)

    status, body = deliver(callback_event(placed_job, kie, **kwargs))

    assert status == 401 and body["error"]["code"] == "unauthorized"
    after = stored(placed_job["id"])
    assert after.phase == before.phase and after.updated_at == before.updated_at
    assert len(kie.calls) == calls_before  # not even a re-fetch
    assert queued_messages(aws["transfer_queue_url"]) == []


@pytest.mark.parametrize("raw", ["not json", "[" * 100_000], ids=["malformed", "nested-100k-deep"])
def test_an_unparseable_callback_body_is_refused_like_a_malformed_one(aws, kie, placed_job, raw):
    kie.state = "success"
    before = stored(placed_job["id"])
    calls_before = len(kie.calls)
    event = callback_event(placed_job, kie)
    event["body"] = raw

    status, body = deliver(event)

    assert (status, body["error"]["code"]) == (401, "unauthorized")  # not a 500
    assert stored(placed_job["id"]).updated_at == before.updated_at and len(kie.calls) == calls_before


def test_without_hmac_key_the_url_token_is_required(aws, kie, placed_job, monkeypatch):
    from motionrelay.registry import reset_adapters

    monkeypatch.delenv("MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY")
    reset_adapters()
    kie.state = "success"
    assert deliver(callback_event(placed_job, kie, token=None, signature=None))[0] == 401
    assert deliver(callback_event(placed_job, kie, signature=None))[0] == 200


def test_callback_for_unknown_job_or_provider_is_404(aws, kie, placed_job):
    for provider, job_id in (("kie", "job_missing"), ("acme", placed_job["id"])):
        event = callback_event(placed_job, kie)
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/callbacks/{provider}/{job_id}"
        event["pathParameters"] = {"provider": provider, "job_id": job_id}
        assert deliver(event)[0] == 404


def test_slow_provider_defers_confirmation_to_the_poller(aws, kie, placed_job, monkeypatch):
    import httpx

    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    monkeypatch.setattr("motionrelay.callbacks.provider_client",
                        lambda t: httpx.Client(transport=httpx.MockTransport(timeout)))
    status, body = deliver(callback_event(placed_job, kie))
    assert status == 200 and body["applied"] is False
    job = stored(placed_job["id"])
    assert job.phase.value == "queued"
    from motionrelay.infra.jobs_table import JobStore

    assert [j["id"] for j in JobStore().due_jobs(time.time() + 1)] == [placed_job["id"]]

