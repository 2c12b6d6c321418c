"""Client notifications on the local stack: a job with a `webhook_url` pointing at a loopback
HTTPS receiver gets exactly one notification per terminal state, signed with the tenant's
Standard Webhooks secret and verified here the way a receiver would (`standardwebhooks`).

The receiver is real HTTPS (webhook URLs must be https://) with a throw-away certificate for
127.0.0.1, trusted through the functions' `SSL_CERT_FILE`; the SSRF guard
lets the notifier reach loopback only because the local stack sets MOTIONRELAY_LOCAL=1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook
from tests.integration.receiver import Receiver
from tests.integration.stacks import start_stack

from motionrelay_local.stack import LocalStack

pytestmark = pytest.mark.integration

JOB_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def stack(certificate: tuple[Path, Path]) -> Iterator[LocalStack]:
    # The notifier trusts the throw-away certificate through its own environment, as a
    # deployment would through its CA bundle; nothing else in this process changes.
    yield from start_stack(routing="kie", extra_env={"SSL_CERT_FILE": str(certificate[0])})


@pytest.fixture(scope="module")
def secret(api: httpx.Client) -> str:
    resp = api.get("/v1/webhook-secret")
    assert resp.status_code == 200, resp.text
    return resp.json()["secret"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def wait_for_terminal(api: httpx.Client, job_id: str) -> dict:
    return wait_for(lambda: (j := api.get(f"/v1/jobs/{job_id}").json())["status"] in
                    ("succeeded", "failed", "canceled") and j, JOB_TIMEOUT, f"job {job_id} to finish")


def verified(request: dict, secret: str) -> dict:
    return Webhook(secret).verify(request["body"], request["headers"])


def test_a_finished_job_is_notified_once_signed_with_the_tenants_secret(
        stack: LocalStack, api: httpx.Client, sample_request: dict, receiver: Receiver, secret: str):
    hook = f"{receiver.url}/hooks/succeeded?token=abc"
    resp = api.post("/v1/jobs", json={**sample_request, "webhook_url": hook})
    assert resp.status_code == 202, resp.text
    job = wait_for_terminal(api, resp.json()["id"])
    assert job["status"] == "succeeded"

    [request] = wait_for(lambda: receiver.for_path("/hooks/succeeded?token=abc"), 30, "the notification")
    assert request["headers"]["webhook-id"] == f"msg_{job['id']}_succeeded"
    payload = verified(request, secret)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"] and payload["data"]["status"] == "succeeded"
    assert payload["data"]["output"]["sha256"] == job["output"]["sha256"]
    # The presigned output URL in the notification works.
    with httpx.Client(timeout=30, trust_env=False) as http:
        video = http.get(payload["data"]["output"]["url"])
    assert video.status_code == 200 and len(video.content) == job["output"]["size_bytes"]

    # Nothing more arrives: the queues drain and the receiver still has exactly one.
    assert stack.wait_until_idle(30)
    time.sleep(1.0)
    assert len(receiver.for_path("/hooks/succeeded?token=abc")) == 1
    assert stack.stats["notify_invocations"][job["id"]] == 1


def test_a_failed_attempt_is_retried_with_the_same_webhook_id(
        stack: LocalStack, api: httpx.Client, sample_request: dict, receiver: Receiver, secret: str):
    stack.sandbox.configure("kie", state_seconds=5.0)  # long enough to cancel while it runs
    try:
        receiver.fail_first["/hooks/canceled"] = 1
        resp = api.post("/v1/jobs", json={**sample_request, "webhook_url": f"{receiver.url}/hooks/canceled"})
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 409  # no second terminal event

        # The notifier's first backoff step is 30 s +-20 % (the local stack leaves it as set).
        first, second = wait_for(lambda: (got := receiver.for_path("/hooks/canceled"))[1:] and got, 60,
                                 "the retried notification")
        assert stack.wait_until_idle(30)
    finally:
        stack.sandbox.configure("kie", state_seconds=0.2)
    assert len(receiver.for_path("/hooks/canceled")) == 2  # one 500, then one 204: done
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == f"msg_{job_id}_canceled"
    for request in (first, second):
        payload = verified(request, secret)
        assert payload["type"] == "job.canceled" and payload["data"]["id"] == job_id
    assert json.loads(second["body"])["data"]["status"] == "canceled"
