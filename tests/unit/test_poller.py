"""The poller over the sparse due index, with a fake Kie."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx

import poller_handler
from conftest import FakeContext, load_event, queued_messages, set_attributes
from motionrelay import poller
from motionrelay.domain.job import Phase
from motionrelay.infra.jobs_table import JobStore
from motionrelay.lifecycle import schedule_poll
from motionrelay.settings import reset_settings
from test_api import post_job, sample_request


def make_due(job_id: str) -> None:
    schedule_poll(JobStore(), job_id, time.time() - 1)


def test_scheduled_event_polls_due_jobs_and_applies_success(aws, kie):
    due = post_job(sample_request())[1]["id"]
    not_due = post_job(sample_request())[1]["id"]
    make_due(due)
    kie.state = "success"

    report = poller_handler.lambda_handler(load_event("schedule.json"), FakeContext())

    assert report["due"] == 1 and report["polled"] == 1
    store = JobStore()
    assert store.get(due).phase is Phase.TRANSFERRING
    assert store.get(not_due).phase is Phase.QUEUED  # not due: not read, not polled
    assert sum(1 for _, p in kie.calls if p.endswith("/recordInfo")) == 1
    assert len(queued_messages(aws["transfer_queue_url"])) == 1


def test_still_running_jobs_are_rescheduled_later(aws, kie):
    job_id = post_job(sample_request())[1]["id"]
    make_due(job_id)
    kie.state = "generating"
    poller.run(FakeContext().get_remaining_time_in_millis)
    store = JobStore()
    assert store.get(job_id).phase is Phase.RUNNING
    assert list(store.due_jobs(time.time() + 5)) == []  # next poll is tens of seconds away
    assert [j["id"] for j in store.due_jobs(time.time() + 3600)] == [job_id]


def test_jobs_past_their_deadline_fail_with_timeout(aws, kie):
    job_id = post_job(sample_request())[1]["id"]
    make_due(job_id)
    report = poller.run(FakeContext().get_remaining_time_in_millis, now=lambda: time.time() + 7200)
    job = JobStore().get(job_id)
    assert report.timed_out == 1
    assert job.phase is Phase.FAILED and job.error["code"] == "timeout"


def test_pending_jobs_are_placed_again(aws, kie):
    kie.submit_code = 455
    job = post_job(sample_request())[1]
    assert job["provider_task_id"] is None
    kie.submit_code = 200
    poller.run(FakeContext().get_remaining_time_in_millis, now=lambda: time.time() + 120)
    placed = JobStore().get(job["id"])
    assert placed.phase is Phase.QUEUED and placed.provider_task_id
    outcomes = [a["outcome"] for a in placed.attempts]
    assert outcomes == ["retryable_error", "no_provider_available", "submitted"]


def test_no_work_is_started_without_time_left(aws, kie):
    make_due(post_job(sample_request())[1]["id"])
    report = poller.run(lambda: 2_000)  # under the safety margin plus one request's time
    assert report.due == 0 and not any(p.endswith("/recordInfo") for _, p in kie.calls)


def test_overlapping_invocations_apply_each_success_once(aws, kie):
    ids = [post_job(sample_request())[1]["id"] for _ in range(4)]
    for job_id in ids:
        make_due(job_id)
    kie.state = "success"
    barrier = threading.Barrier(2)

    def invoke():
        barrier.wait()
        poller.run(FakeContext().get_remaining_time_in_millis)

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    messages = [json.loads(m["Body"])["job_id"] for m in queued_messages(aws["transfer_queue_url"])]
    assert sorted(messages) == sorted(ids)  # one transfer per job, however many pollers saw it


def test_lost_transfer_messages_are_requeued(aws, kie):
    from motionrelay.domain.job import ProviderState, ProviderStatus
    from motionrelay.lifecycle import apply

    job_id = post_job(sample_request())[1]["id"]
    apply(job_id, ProviderStatus(ProviderState.SUCCEEDED, output_url="https://cdn.kie.example/r/out.mp4"))
    report = poller.run(FakeContext().get_remaining_time_in_millis, now=lambda: time.time() + 600)
    assert report.transfers_requeued == 1
    assert len(queued_messages(aws["transfer_queue_url"])) == 2


# --------------------------------------------------------------------------- async poller


def _running_jobs(n: int) -> list[str]:
    ids = [post_job(sample_request())[1]["id"] for _ in range(n)]
    for job_id in ids:
        make_due(job_id)
    return ids


def _record(state: str, **extra) -> dict:
    data = {"taskId": "t", "state": state, "resultJson": "", "failCode": "", "failMsg": "", **extra}
    return {"code": 200, "msg": "success", "data": data}


def test_requests_in_flight_are_bounded_per_provider(aws, kie, monkeypatch):
    monkeypatch.setenv("MOTIONRELAY_POLL_CONCURRENCY", "kie=3")
    reset_settings()
    _running_jobs(9)
    in_flight, peak = 0, 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(200, json=_record("generating"))

    report = poller.run(FakeContext().get_remaining_time_in_millis,
                        http_client=httpx.AsyncClient(transport=httpx.MockTransport(slow)))
    assert report.polled == 9
    assert peak == 3


def test_a_429_pauses_the_provider_for_its_retry_after(aws, kie):
    ids = _running_jobs(3)
    calls: list[float] = []

    def limited(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"code": 429, "msg": "slow down"})
        return httpx.Response(200, json=_record("generating"))

    report = poller.run(FakeContext(4_000).get_remaining_time_in_millis,
                        http_client=httpx.AsyncClient(transport=httpx.MockTransport(limited)))
    assert report.rate_limited >= 1
    # Requests still in flight when the 429 came back may finish; every later one waits.
    later = [t for t in calls[1:] if t - calls[0] > 0.5]
    assert len(calls) - 1 - len(later) <= 2 and later, "requests resumed after Retry-After"
    store = JobStore()
    throttled = [store.get(i) for i in ids if store.get(i).phase is not Phase.RUNNING]
    for job in throttled:  # the throttled job is due again no sooner than Retry-After
        assert job.phase is Phase.QUEUED


def test_the_next_poll_follows_the_providers_eta(aws, kie):
    from motionrelay.domain.job import ProviderState, ProviderStatus
    from motionrelay.domain.schedule import next_poll_delay
    from motionrelay.registry import get_adapter

    caps = get_adapter("kie").capabilities
    with_eta = next_poll_delay(ProviderStatus(ProviderState.RUNNING, eta_seconds=40), 1, caps,
                               callback_expected=False)
    assert 40 <= with_eta <= 50  # the ETA plus a margin
    halfway = next_poll_delay(ProviderStatus(ProviderState.RUNNING, progress=50), 1, caps,
                              callback_expected=False, running_for=30)
    assert 27 <= halfway <= 33  # as long again as it took to get half way
    backoff = [next_poll_delay(ProviderStatus(ProviderState.RUNNING), n, caps, callback_expected=False)
               for n in (1, 2, 3, 8)]
    assert backoff[0] < backoff[1] < backoff[2] <= backoff[3] <= 132
    safety_net = next_poll_delay(ProviderStatus(ProviderState.RUNNING), 1, caps, callback_expected=True)
    assert safety_net >= 200  # a provider that calls back is polled only as a safety net


def test_without_eta_or_progress_polls_follow_the_time_already_run():
    """Detection lag ~ a tenth of the run time, at a handful of polls per job."""
    from motionrelay.domain.job import ProviderState, ProviderStatus
    from motionrelay.domain.schedule import (
        ELAPSED_FRACTION,
        MIN_DELAY_SECONDS,
        first_poll_delay,
        next_poll_delay,
    )
    from motionrelay.providers.vibedream import CAPABILITIES as caps

    assert caps.typical_run_seconds == (60.0, 180.0)
    running = ProviderStatus(ProviderState.RUNNING)
    assert first_poll_delay(caps, callback_expected=False) >= 54  # not before the shortest run
    early = next_poll_delay(running, 1, caps, callback_expected=False, running_for=60)
    assert MIN_DELAY_SECONDS * 0.9 <= early <= MIN_DELAY_SECONDS * 1.1
    late = next_poll_delay(running, 5, caps, callback_expected=False, running_for=150)
    assert 150 * ELAPSED_FRACTION * 0.9 <= late <= 150 * ELAPSED_FRACTION * 1.1
    # The same schedule on the local stack's compressed clock.
    scaled = next_poll_delay(running, 5, caps, callback_expected=False, running_for=15, scale=0.1)
    assert 150 * ELAPSED_FRACTION * 0.9 * 0.1 <= scaled <= 150 * ELAPSED_FRACTION * 1.1 * 0.1
    # Polls of a 120 s job from its first poll until it is seen done.
    t, polls = 60.0, 1
    while t < 120:
        t += next_poll_delay(running, polls, caps, callback_expected=False, running_for=t)
        polls += 1
    assert polls <= 8 and (t - 120) / 120 <= 0.10


def test_jobs_due_within_the_invocation_are_polled_again(aws, kie, monkeypatch):
    """A job due again before the next scheduled run is polled in the same invocation."""
    monkeypatch.setattr("motionrelay.domain.schedule.MIN_DELAY_SECONDS", 1.0)
    monkeypatch.setattr("motionrelay.domain.schedule.BACKOFF_BASE_SECONDS", 1.0)
    [job_id] = _running_jobs(1)
    # A job placed without a callback URL: polled on the provider's schedule, not as a safety net.
    set_attributes(job_id, callback_expected=False)
    done = _record("success", resultJson='{"resultUrls":["https://cdn.kie.example/r/out.mp4"]}')
    answers = iter([_record("generating"), _record("generating")])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers, done))

    started = time.monotonic()
    report = poller.run(lambda: int((8 - (time.monotonic() - started)) * 1000),
                        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    assert report.polled == 3 and report.passes == 3
    assert JobStore().get(job_id).phase is Phase.TRANSFERRING
    assert time.monotonic() - started < 8 - poller.SAFETY_MARGIN_SECONDS  # stopped before the timeout


def test_a_job_submitted_with_a_callback_is_polled_only_as_a_safety_net(aws, kie, monkeypatch):
    """With PublicUrl empty the API's own domain is called back: the job, not the settings,
    says whether a callback is coming."""
    monkeypatch.setenv("MOTIONRELAY_PUBLIC_URL", "")
    reset_settings()
    [job_id] = _running_jobs(1)
    assert JobStore().get(job_id).callback_base  # the submit carried a callback URL
    kie.state = "generating"
    poller.run(FakeContext(3_000).get_remaining_time_in_millis)
    assert list(JobStore().due_jobs(time.time() + 200)) == []  # next poll after the typical run
