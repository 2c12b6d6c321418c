"""Failover in the local stack: with Kie's sandbox failing every submit, a job routed without
`provider` is placed with the next provider in MOTIONRELAY_ROUTING and runs to the end."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from tests.integration.stacks import start_stack

from motionrelay_local import demo
from motionrelay_local.stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    yield from start_stack(routing="kie,aimlapi")


def wait_final(api: httpx.Client, job: dict, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] not in ("succeeded", "failed", "canceled") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = api.get(f"/v1/jobs/{job['id']}").json()
    return job


def test_a_job_fails_over_when_the_first_provider_is_down(stack: LocalStack, api: httpx.Client):
    stack.sandbox.configure("kie", fail_submit=455)  # Kie: "service unavailable", every submit
    try:
        created = api.post("/v1/jobs", json=demo.sample_request())
        assert created.status_code == 202, created.text
        job = created.json()
        assert job["provider"] == "aimlapi"
        assert [(a["provider"], a["outcome"]) for a in job["attempts"]] == [
            ("kie", "retryable_error"), ("aimlapi", "submitted")]

        # While Kie cools down (30 s, compressed like the schedule), the next job does not try it.
        kie_submits = stack.sandbox.requests[("kie", "createTask")]
        second = api.post("/v1/jobs", json=demo.sample_request()).json()
        assert second["provider"] == "aimlapi"
        assert second["attempts"][0]["outcome"] == "cooldown"
        assert stack.sandbox.requests[("kie", "createTask")] == kie_submits

        job = wait_final(api, job)
        assert job["status"] == "succeeded", job.get("error")
        assert job["output"]["size_bytes"] > 0
        # AI/ML API does not call back: the poller completed it.
        assert stack.sandbox.requests[("aimlapi", "fetch")] >= 1
    finally:
        stack.sandbox.configure("kie", fail_submit=None)
