"""Routing and failover: retryable submit failures move on to the next provider and put the
failing one in a shared cooldown; final rejections fail the job; nobody available leaves the
job queued for the poller, which places it once a provider recovers."""

from __future__ import annotations

import json
import time

from conftest import FakeContext
from motionrelay import poller
from motionrelay.domain import cooldown
from motionrelay.domain.job import Phase
from motionrelay.infra.jobs_table import JobStore
from test_api import post_job, sample_request


def outcomes(job: dict) -> list[tuple[str | None, str]]:
    return [(a["provider"], a["outcome"]) for a in job["attempts"]]


def test_a_retryable_failure_fails_over_and_cools_the_provider_down(providers):
    kie, aiml = providers
    kie.submit_code = 455  # Kie: service unavailable / maintenance
    status, job = post_job(sample_request())
    assert status == 202 and job["status"] == "queued"
    assert job["provider"] == "aimlapi" and job["provider_task_id"] == "gen-1"
    assert outcomes(job) == [("kie", "retryable_error"), ("aimlapi", "submitted")]
    assert job["attempts"][0]["code"] == "provider_maintenance"
    assert cooldown.cooling(JobStore().cooldowns(["kie"]), "kie", time.time()) is not None

    # The next job skips Kie without calling it while the cooldown lasts.
    calls_before = kie.submits()
    _, second = post_job(sample_request())
    assert kie.submits() == calls_before
    assert outcomes(second) == [("kie", "cooldown"), ("aimlapi", "submitted")]


def test_a_final_rejection_fails_the_job_with_the_providers_reason(providers):
    kie, aiml = providers
    kie.submit_code = 422  # Kie: validation error
    _, job = post_job(sample_request())
    assert job["status"] == "failed"
    assert job["error"]["code"] == "provider_validation_error" and job["error"]["message"] == "nope"
    assert aiml.submits == 0  # a request the provider judged invalid is not shopped around
    assert JobStore().cooldowns(["kie"]) == {}  # and is not the provider's fault


def test_all_providers_down_keeps_the_job_until_one_recovers(providers):
    kie, aiml = providers
    kie.submit_code, aiml.status = 500, 503
    status, job = post_job(sample_request())
    assert status == 202 and job["status"] == "queued" and job["provider_task_id"] is None
    assert outcomes(job) == [("kie", "retryable_error"), ("aimlapi", "retryable_error"),
                             (None, "no_provider_available")]
    store = JobStore()
    assert store.get(job["id"]).phase is Phase.PENDING

    # Still down, and cooling down: the poller's retry records it and keeps the job.
    poller.run(FakeContext(5_000).get_remaining_time_in_millis, now=lambda: time.time() + 20)
    assert store.get(job["id"]).phase is Phase.PENDING

    # AI/ML API recovers and its cooldown has run out: the poller places the job there.
    aiml.status = 200
    poller.run(FakeContext(5_000).get_remaining_time_in_millis, now=lambda: time.time() + 400)
    placed = store.get(job["id"])
    assert placed.phase is Phase.QUEUED and placed.provider == "aimlapi"
    assert placed.attempts[-1]["outcome"] == "submitted"
    assert sum(1 for a in placed.attempts if a["outcome"] == "no_provider_available") >= 2


def test_cooldowns_are_read_by_their_timestamp_not_their_presence(providers):
    """DynamoDB's TTL deletes lazily: an expired cooldown item must not block a provider."""
    kie, _ = providers
    from motionrelay.infra.aws import client
    from motionrelay.settings import get_settings

    client("dynamodb").put_item(TableName=get_settings().table_name, Item={
        "pk": {"S": "COOLDOWN#kie"}, "sk": {"S": "COOLDOWN"}, "until": {"N": str(time.time() - 1)},
        "failures": {"N": "3"}})
    _, job = post_job(sample_request())
    assert job["provider"] == "kie" and outcomes(job) == [("kie", "submitted")]
    assert JobStore().cooldowns(["kie"]) == {}  # a success clears the provider's record


def test_consecutive_failures_lengthen_the_cooldown():
    assert cooldown.ends(0, None, 1000.0) == 1030.0 and cooldown.ends(2, None, 1000.0) == 1120.0
    assert cooldown.ends(9, None, 1000.0) == 1600.0  # capped
    assert cooldown.ends(0, 90, 1000.0) == 1090.0  # the provider's Retry-After wins when longer
    assert cooldown.ends(0, None, 1000.0, scale=0.01) == 1000.3  # the local stack's time scale


def test_the_cooldown_item_counts_failures(providers):
    store = JobStore()
    store.trip_cooldown("kie", time.time() + 30)
    store.trip_cooldown("kie", time.time() + 60)
    until, failures = store.cooldowns(["kie"])["kie"]
    assert failures == 2 and until > time.time() + 50
    store.clear_cooldown("kie")
    assert store.cooldowns(["kie"]) == {}


def test_routing_refuses_what_no_configured_provider_can_serve(providers):
    kie, aiml = providers
    # Neither Kie nor AI/ML API takes a negative prompt: refused before anyone is called.
    status, body = post_job(sample_request(negative_prompt="blurry"))
    assert status == 422 and body["error"]["code"] == "provider_cannot_serve"
    assert kie.submits() == 0 and aiml.submits == 0
    assert json.dumps(body).count("negative_prompt") >= 1
