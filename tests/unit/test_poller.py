"""The poller over the sparse due index, with a fake Kie."""

from __future__ import annotations

import json
import threading
import time

import poller_handler
from conftest import FakeContext, load_event, queued_messages
from motionrelay import poller
from motionrelay.models import Phase
from motionrelay.store import JobStore
from test_api import post_job, sample_request


def make_due(job_id: str) -> None:
    JobStore().schedule_poll(job_id, time.time() - 1)


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
    assert [a["outcome"] for a in placed.attempts] == ["retryable_error", "submitted"]


def test_no_work_is_started_without_time_left(aws, kie):
    make_due(post_job(sample_request())[1]["id"])
    report = poller.run(lambda: 5_000)
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
    from motionrelay.lifecycle import apply
    from motionrelay.models import ProviderState, ProviderStatus

    job_id = post_job(sample_request())[1]["id"]
    apply(job_id, ProviderStatus(ProviderState.SUCCEEDED, output_url="https://cdn.kie.example/r/out.mp4"))
    report = poller.run(FakeContext().get_remaining_time_in_millis, now=lambda: time.time() + 600)
    assert report.transfers_requeued == 1
    assert len(queued_messages(aws["transfer_queue_url"])) == 2
