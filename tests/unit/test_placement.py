"""Crash-safe, exclusive placement: every ordering that used to lose a job or pay a provider
twice. A crash is simulated by the exception Lambda would never let the code see (the
invocation just ends): the test makes a step raise and then lets the poller take over, with
the poller's clock moved past the dead placer's lease."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from conftest import FakeContext, queued_messages
from motionrelay import lifecycle, poller, submission
from motionrelay.domain.job import Phase
from motionrelay.infra.jobs_table import JobStore
from motionrelay.settings import reset_settings
from test_api import post_job, sample_request
from test_failover import outcomes


def run_poller(after_seconds: float, budget_ms: int = 5_000) -> poller.PollReport:
    remaining = FakeContext(budget_ms).get_remaining_time_in_millis
    return poller.run(remaining, now=lambda: time.time() + after_seconds)


def only_job_id() -> str:
    from test_api import job_items

    [item] = job_items()
    return item["id"]["S"]


class Died(BaseException):
    """Stands for the end of the process: nothing in the code catches a BaseException."""


def die_before_placed(monkeypatch) -> list[bool]:
    """The placer dies after the provider's answer, before it is recorded, while the flag it
    returns holds True (set it False to let the next placer live)."""
    real_placed = submission._placed
    dying = [True]

    def placed(*args, **kwargs):
        if dying[0]:
            raise Died()
        return real_placed(*args, **kwargs)

    monkeypatch.setattr(submission, "_placed", placed)
    return dying


def test_a_crash_after_the_job_write_and_before_the_submit_is_placed_by_the_poller(aws, kie, monkeypatch):
    real_place = submission.place
    monkeypatch.setattr(submission, "place", lambda *a, **k: (_ for _ in ()).throw(Died()))
    with pytest.raises(Died):
        post_job(sample_request())
    job_id = only_job_id()
    stored = JobStore().get(job_id)
    assert stored.phase is Phase.PENDING and kie.submits() == 0
    item = aws_item(job_id)
    assert item["due_shard"].startswith("due#"), "the job is on the due index from its first write"
    assert float(item["next_poll_at"]) > float(item["placing_until"]) > time.time()

    monkeypatch.setattr(submission, "place", real_place)
    run_poller(after_seconds=10)  # the lease still holds: nobody else places it
    assert kie.submits() == 0
    run_poller(after_seconds=120)  # past the lease: the poller places it, once
    assert kie.submits() == 1
    assert JobStore().get(job_id).phase is Phase.QUEUED


def test_a_job_nobody_places_fails_at_its_deadline(aws, kie, monkeypatch):
    monkeypatch.setattr(submission, "place", lambda *a, **k: (_ for _ in ()).throw(Died()))
    with pytest.raises(Died):
        post_job(sample_request())
    job_id = only_job_id()
    run_poller(after_seconds=1800 + 60)
    job = JobStore().get(job_id)
    assert job.phase is Phase.FAILED and job.error["code"] == "timeout"


def test_a_crash_after_the_provider_accepted_is_recorded_as_ambiguous_and_fails_over(providers, monkeypatch):
    kie, aiml = providers
    dying = die_before_placed(monkeypatch)
    with pytest.raises(Died):
        post_job(sample_request())
    assert kie.accepted() == 1  # Kie accepted; the answer was never recorded
    job_id = only_job_id()
    assert JobStore().get(job_id).submitting["provider"] == "kie"

    dying[0] = False
    run_poller(after_seconds=120)
    job = JobStore().get(job_id)
    assert job.phase is Phase.QUEUED and job.provider == "aimlapi"
    assert outcomes({"attempts": job.attempts}) == [("kie", "ambiguous"), ("aimlapi", "submitted")]
    assert kie.accepted() == 1 and aiml.submits == 1
    assert job.submitting is None and job.placing_by is None


def test_without_failover_an_ambiguous_job_waits_for_its_deadline(providers, monkeypatch):
    kie, aiml = providers
    monkeypatch.setenv("MOTIONRELAY_FAILOVER_ON_AMBIGUOUS", "false")
    reset_settings()
    kie.raise_on_submit = httpx.ReadTimeout("no answer")
    status, job = post_job(sample_request())
    assert status == 202 and job["status"] == "queued" and job["provider_task_id"] is None
    assert outcomes(job) == [("kie", "ambiguous")]
    assert aiml.submits == 0
    run_poller(after_seconds=120)
    assert aiml.submits == 0 and JobStore().get(job["id"]).phase is Phase.PENDING
    run_poller(after_seconds=1800 + 60)
    assert JobStore().get(job["id"]).error["code"] == "timeout"


@pytest.mark.parametrize("answer, outcome", [
    (httpx.ReadTimeout("sent, no answer"), "ambiguous"),
    (httpx.RemoteProtocolError("reset after sending"), "ambiguous"),
    (httpx.Response(502, text="<html>Bad Gateway</html>"), "ambiguous"),
    (httpx.ConnectError("refused"), "retryable_error"),
    (httpx.ConnectTimeout("no connection"), "retryable_error"),
    (httpx.Response(500, json={"code": 500, "msg": "internal error"}), "retryable_error"),
])
def test_submit_outcomes_are_refused_or_ambiguous(providers, answer, outcome):
    kie, aiml = providers
    kie.raise_on_submit = answer
    _, job = post_job(sample_request())
    assert outcomes(job)[0] == ("kie", outcome)
    assert job["provider"] == "aimlapi"  # the default fails over in both cases


def test_two_placers_on_one_job_submit_once(providers, monkeypatch):
    kie, aiml = providers
    kie.submit_code = kie.submit_http_status = 500
    aiml.status = 503
    _, job = post_job(sample_request())  # nobody took it: pending, lease released
    kie.submit_code, kie.submit_http_status, aiml.status = 200, 200, 200
    gate = threading.Event()
    entered = threading.Event()
    kie.before_submit = lambda: (entered.set(), gate.wait(5))
    aiml_before = aiml.submits
    store = JobStore()
    pending = store.get(job["id"])
    results = []
    later = lambda: time.time() + 120  # noqa: E731 - both providers' cooldowns have run out by then
    placers = [threading.Thread(
        target=lambda: results.append(submission.place(pending, store=store, now=later))) for _ in range(2)]
    placers[0].start()
    assert entered.wait(5)  # the first placer's submit is in flight ...
    placers[1].start()  # ... when the second one starts
    time.sleep(0.3)  # it has had every chance to submit too
    gate.set()
    for t in placers:
        t.join(10)
    # One placer held the lease; the other left the job alone.
    assert kie.accepted() + aiml.submits - aiml_before == 1
    placed = store.get(job["id"])
    assert placed.phase is Phase.QUEUED and placed.orphaned_tasks == []


def test_a_stale_due_entry_is_handled_once_per_invocation(aws, kie, monkeypatch):
    _, job = post_job(sample_request())
    store = JobStore()
    item = aws_item(job["id"])
    stale = {k: item[k] for k in ("id", "phase", "provider", "provider_task_id", "deadline_at", "poll_count",
                                  "tenant_id", "submitted_at")}
    stale["next_poll_at"] = time.time() - 1  # what a lagging index would keep returning
    monkeypatch.setattr(JobStore, "due_jobs", lambda self, now, limit=1000: iter([dict(stale)]))
    before = kie.status_calls()
    report = run_poller(after_seconds=0, budget_ms=4_000)
    assert kie.status_calls() - before == 1
    assert report.stale >= 1
    assert store.get(job["id"]).phase in (Phase.QUEUED, Phase.RUNNING)


def test_a_job_whose_handling_raises_backs_off_and_does_not_stall_the_others(aws, kie, monkeypatch):
    _, first = post_job(sample_request())
    _, second = post_job(sample_request())
    real_apply = poller.apply

    def apply(job_id, *args, **kwargs):
        if job_id == first["id"]:
            raise RuntimeError("poison answer")
        return real_apply(job_id, *args, **kwargs)

    monkeypatch.setattr(poller, "apply", apply)
    report = run_poller(after_seconds=600)
    assert report.errors == 1
    store = JobStore()
    assert store.get(first["id"]).poll_errors == 1
    assert float(aws_item(first["id"])["next_poll_at"]) > time.time() + 20  # backed off, not hot
    assert store.get(second["id"]).phase in (Phase.RUNNING, Phase.QUEUED, Phase.TRANSFERRING)


def test_a_crash_between_the_terminal_write_and_the_enqueue_is_swept(aws, kie, monkeypatch):
    _, job = post_job({**sample_request(), "webhook_url": "https://hooks.example/done"})
    monkeypatch.setattr(lifecycle, "settle_notification", lambda *a, **k: False)  # the writer died here
    lifecycle.fail(job["id"], "provider_failed", "boom", event="provider_failed")
    item = aws_item(job["id"])
    assert item["due_shard"].startswith("owed#")
    assert queued_messages(aws["notify_queue_url"]) == []

    monkeypatch.undo()
    run_poller(after_seconds=10)  # not a minute yet: the writer may still be queueing it
    assert queued_messages(aws["notify_queue_url"]) == []
    run_poller(after_seconds=120)
    [message] = queued_messages(aws["notify_queue_url"])
    assert f"msg_{job['id']}_failed" in message["Body"]
    assert "due_shard" not in aws_item(job["id"])
    run_poller(after_seconds=240)
    assert len(queued_messages(aws["notify_queue_url"])) == 1  # swept once


def test_a_terminal_job_without_a_webhook_leaves_the_index_at_once(aws, kie):
    _, job = post_job(sample_request())
    lifecycle.fail(job["id"], "provider_failed", "boom", event="provider_failed")
    assert "due_shard" not in aws_item(job["id"])


def test_an_idempotency_key_retried_after_a_crash_finds_the_same_job(aws, kie, monkeypatch):
    from motionrelay.infra import idempotency
    from test_idempotency import post

    idempotency.reset()
    monkeypatch.setattr(submission, "place", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("died")))
    status, _, _ = post(sample_request(), "retry-me")
    assert status == 500  # Powertools deletes its record on the exception
    monkeypatch.undo()
    status, job, _ = post(sample_request(), "retry-me")
    assert status == 202 and job["id"] == only_job_id()  # the same job, not a second one
    assert kie.submits() == 0  # and it is not placed twice at once: its lease still holds
    status, body, _ = post(sample_request(prompt="other"), "retry-me")
    assert status == 409 and body["error"]["code"] == "idempotency_conflict"


def aws_item(job_id: str) -> dict:
    from motionrelay.infra.jobs_table import from_ddb
    from test_api import job_items

    return next(from_ddb(i) for i in job_items() if i["id"]["S"] == job_id)
