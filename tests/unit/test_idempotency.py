"""Idempotency-Key on POST /v1/jobs (Powertools Idempotency on DynamoDB)."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

import api_handler
from conftest import DEV_KEY, FakeContext, load_event
from motionrelay.infra import idempotency
from test_api import job_items, sample_request


@pytest.fixture(autouse=True)
def fresh_idempotency():
    idempotency.reset()
    yield
    idempotency.reset()


def post(body: dict, key: str | None, api_key: str = DEV_KEY) -> tuple[int, dict, dict]:
    event = load_event("api_post_job.json")
    event["body"] = json.dumps(body)
    event["headers"]["authorization"] = f"Bearer {api_key}"
    if key is not None:
        event["headers"]["idempotency-key"] = key
    response = api_handler.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"]), response.get("headers") or {}


def test_a_replay_returns_the_same_job_without_a_second_submit(aws, kie):
    body = sample_request()
    first = post(body, "order-42")
    again = post(dict(reversed(list(body.items()))), "order-42")  # same body, other key order

    assert first[0] == again[0] == 202
    assert first[1]["id"] == again[1]["id"]
    assert (first[2]["Idempotent-Replayed"], again[2]["Idempotent-Replayed"]) == ("false", "true")
    assert kie.submits() == 1 and len(job_items()) == 1


def test_the_same_key_with_another_body_is_409(aws, kie):
    post(sample_request(), "order-42")
    status, body, _ = post(sample_request(prompt="something else"), "order-42")
    assert (status, body["error"]["code"]) == (409, "idempotency_conflict")
    assert kie.submits() == 1


def test_keys_are_per_tenant(aws, kie):
    from motionrelay.apikeys import put_key

    put_key("mr_other_tenant_key_abcdefghijkl", tenant_id="tenant-b", name="other")
    a = post(sample_request(), "shared-key")[1]
    b = post(sample_request(), "shared-key", api_key="mr_other_tenant_key_abcdefghijkl")[1]
    assert a["id"] != b["id"] and kie.submits() == 2


def test_a_refused_request_does_not_burn_the_key(aws, kie):
    status, body, _ = post(sample_request(provider="kie", negative_prompt="blur"), "order-7")
    assert status == 422
    assert post(sample_request(provider="kie", negative_prompt="blur"), "order-7")[0] == 422
    assert post(sample_request(), "order-8")[0] == 202


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "bad\nkey"])
def test_malformed_keys_are_refused(aws, kie, key):
    status, body, _ = post(sample_request(), key)
    error = body["error"]
    assert (status, error["code"], error["field"]) == (400, "invalid_request", "Idempotency-Key")


def test_two_concurrent_identical_requests_submit_once(aws, kie, monkeypatch):
    """The second arrives while the first is still at the provider: 409 in progress, then the
    same job once the first has finished."""
    entered, release = threading.Event(), threading.Event()
    slow_handler = kie.handler

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/createTask"):
            entered.set()
            release.wait(10)
        return slow_handler(request)

    monkeypatch.setattr("motionrelay.submission.provider_client",
                        lambda timeout: httpx.Client(transport=httpx.MockTransport(handler)))
    results: list = []
    first = threading.Thread(target=lambda: results.append(post(sample_request(), "same")))
    first.start()
    assert entered.wait(10)
    status, body, _ = post(sample_request(), "same")
    release.set()
    first.join(10)

    assert (status, body["error"]["code"]) == (409, "idempotency_in_progress")
    assert results[0][0] == 202
    replay = post(sample_request(), "same")
    assert replay[0] == 202 and replay[1]["id"] == results[0][1]["id"]
    assert kie.submits() == 1 and len(job_items()) == 1
