"""apply() and the conditional transitions: forward only, terminal is final, once only."""

from __future__ import annotations

import time

import pytest

from conftest import queued_messages
from motionrelay.domain.job import Phase, ProviderState, ProviderStatus
from motionrelay.infra.jobs_table import JobStore
from motionrelay.lifecycle import apply, complete, fail, schedule_poll
from test_api import post_job, sample_request

SUCCESS = ProviderStatus(ProviderState.SUCCEEDED, output_url="https://cdn.kie.example/r/out.mp4")


@pytest.fixture
def job_id(aws, kie):
    return post_job(sample_request())[1]["id"]


def phase(job_id: str) -> Phase:
    return JobStore().get(job_id).phase


def test_forward_path(aws, job_id):
    assert apply(job_id, ProviderStatus(ProviderState.QUEUED)) is None
    assert apply(job_id, ProviderStatus(ProviderState.RUNNING, progress=10)).phase is Phase.RUNNING
    assert apply(job_id, SUCCESS).phase is Phase.TRANSFERRING
    output = {"key": "outputs/x.mp4", "size_bytes": 1, "sha256": "0", "content_type": "video/mp4"}
    assert complete(job_id, output)
    assert phase(job_id) is Phase.SUCCEEDED


@pytest.mark.parametrize("late", [
    ProviderStatus(ProviderState.QUEUED),
    ProviderStatus(ProviderState.RUNNING, progress=50),
    ProviderStatus(ProviderState.FAILED, error_code="x", error_message="late failure"),
    SUCCESS,
])
def test_terminal_jobs_never_move_again(aws, job_id, late):
    fail(job_id, "timeout", "deadline", event="deadline_passed")
    updated = JobStore().get(job_id).updated_at
    assert apply(job_id, late) is None
    job = JobStore().get(job_id)
    assert job.phase is Phase.FAILED and job.error["code"] == "timeout" and job.updated_at == updated


def test_running_never_goes_back_to_queued_and_progress_never_drops(aws, job_id):
    apply(job_id, ProviderStatus(ProviderState.RUNNING, progress=60))
    apply(job_id, ProviderStatus(ProviderState.QUEUED))
    apply(job_id, ProviderStatus(ProviderState.RUNNING, progress=30))
    job = JobStore().get(job_id)
    assert job.phase is Phase.RUNNING and job.progress == 60


def test_success_is_applied_once_however_often_it_arrives(aws, job_id):
    results = [apply(job_id, SUCCESS) for _ in range(3)]
    assert [r is not None for r in results] == [True, False, False]
    assert len(queued_messages(aws["transfer_queue_url"])) == 1


def test_a_failure_after_success_does_not_override_it(aws, job_id):
    apply(job_id, SUCCESS)
    apply(job_id, ProviderStatus(ProviderState.FAILED, error_code="x", error_message="late"))
    assert phase(job_id) is Phase.TRANSFERRING


def test_terminal_jobs_leave_the_due_index_and_cannot_reenter(aws, job_id):
    store = JobStore()
    schedule_poll(store, job_id, time.time() - 1)
    assert [j["id"] for j in store.due_jobs(time.time())] == [job_id]
    fail(job_id, "timeout", "deadline", event="deadline_passed")
    schedule_poll(store, job_id, time.time() - 1)  # a late poller's reschedule
    assert list(store.due_jobs(time.time() + 3600)) == []
