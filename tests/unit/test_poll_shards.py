"""Shard fan-out: the tick sends one message per free shard; a poll invocation takes its
shard's lease, polls only that shard within its window, drops stale messages."""

from __future__ import annotations

import json
import time

import pytest

import poller_handler
import tick_handler
from conftest import FakeContext
from motionrelay import poller
from motionrelay.infra.aws import client
from motionrelay.infra.jobs_table import JobStore
from motionrelay.lifecycle import schedule_poll
from motionrelay.settings import reset_settings
from test_api import post_job, sample_request


@pytest.fixture
def shard_queue(aws, monkeypatch):
    url = client("sqs").create_queue(QueueName="poll-shards")["QueueUrl"]
    monkeypatch.setenv("MOTIONRELAY_POLL_SHARD_QUEUE_URL", url)
    reset_settings()
    return url


def _bodies(url: str) -> list[dict]:
    """Every message on the queue (received once each: they stay hidden afterwards)."""
    sqs, bodies = client("sqs"), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       VisibilityTimeout=60).get("Messages", []):
        bodies.extend(json.loads(m["Body"]) for m in batch)
    return bodies


def _due_jobs_on_two_shards() -> dict[int, str]:
    """Two jobs, due now, on two different shards: {shard: job id}."""
    store, by_shard = JobStore(), {}
    while len(by_shard) < 2:
        job_id = post_job(sample_request())[1]["id"]
        shard = int(store.due_shard(job_id).split("#")[1])
        schedule_poll(store, job_id, time.time() - 1)
        by_shard.setdefault(shard, job_id)
    return by_shard


def _message(shard: int) -> dict:
    return {"shard": shard, "sent_at": time.time()}


def _sqs_event(*bodies: dict) -> dict:
    return {"Records": [{"messageId": str(i), "body": json.dumps(b), "eventSource": "aws:sqs"}
                        for i, b in enumerate(bodies)]}


def test_tick_sends_one_message_per_shard(shard_queue, monkeypatch):
    monkeypatch.setenv("MOTIONRELAY_DUE_SHARDS", "13")  # more than one SendMessageBatch of 10
    reset_settings()
    context = FakeContext()

    result = tick_handler.lambda_handler({"source": "aws.events"}, context)

    bodies = _bodies(shard_queue)
    assert sorted(b["shard"] for b in bodies) == list(range(13)) == result["shards"]
    assert len({b["sent_at"] for b in bodies}) == 1


def test_tick_skips_a_shard_whose_lease_is_held(shard_queue):
    store = JobStore()
    assert store.take_shard_lease(2, "someone", time.time() + 30, time.time())

    sent = poller.fan_out()

    assert 2 not in sent and sorted(b["shard"] for b in _bodies(shard_queue)) == sent
    assert sent == [k for k in range(store.shards) if k != 2]


def test_a_stale_message_is_dropped_without_polling(aws, kie):
    jobs = _due_jobs_on_two_shards()
    shard = next(iter(jobs))
    late = {"shard": shard, "sent_at": time.time() - poller.STALE_MESSAGE_SECONDS - 1}

    result = poller_handler.lambda_handler(_sqs_event(late), FakeContext())

    assert result["shards"] == [{"shard": shard, "outcome": "stale"}]
    assert not [p for _, p in kie.calls if p.endswith("/recordInfo")]


def test_the_shard_lease_refuses_an_overlapping_poll(aws, kie):
    jobs = _due_jobs_on_two_shards()
    shard = next(iter(jobs))
    store = JobStore()
    assert store.take_shard_lease(shard, "the other invocation", time.time() + 30, time.time())

    result = poller.run_shard(_message(shard), FakeContext().get_remaining_time_in_millis)

    assert result == {"shard": shard, "outcome": "leased"}
    assert not [p for _, p in kie.calls if p.endswith("/recordInfo")]
    # An expired lease is no obstacle.
    assert store.take_shard_lease(shard, "the other invocation", time.time() - 1, time.time())
    again = poller.run_shard(_message(shard), FakeContext(remaining_ms=20_000).get_remaining_time_in_millis)
    assert again["outcome"] == "polled"
    # Nothing more was due within its time: the shard stays covered until that time would
    # have ended (an idle shard costs no invocations), then it is free again.
    [until] = store.shard_leases([shard]).values()
    assert until == again["idle_until"] and time.time() < until <= time.time() + 20


def test_a_poll_that_ran_to_its_end_releases_the_shard(aws, kie, monkeypatch):
    jobs = _due_jobs_on_two_shards()
    shard = next(iter(jobs))
    monkeypatch.setattr(poller._Poller, "run", _report_without_idle)
    result = poller.run_shard(_message(shard), FakeContext().get_remaining_time_in_millis)
    assert result["outcome"] == "polled"
    assert JobStore().shard_leases([shard]) == {}


async def _report_without_idle(self):
    return poller.PollReport()


def test_a_failed_poll_releases_the_shard(aws, kie, monkeypatch):
    jobs = _due_jobs_on_two_shards()
    shard = next(iter(jobs))

    async def broken(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(poller._Poller, "run", broken)
    with pytest.raises(RuntimeError):
        poller.run_shard(_message(shard), FakeContext().get_remaining_time_in_millis)
    assert JobStore().shard_leases([shard]) == {}


def test_a_poll_invocation_polls_only_its_shard(aws, kie):
    jobs = _due_jobs_on_two_shards()
    (mine, my_job), (other, other_job) = list(jobs.items())[:2]
    kie.state = "generating"

    result = poller_handler.lambda_handler(_sqs_event(_message(mine)), FakeContext())

    [outcome] = result["shards"]
    assert outcome["outcome"] == "polled" and outcome["shard"] == mine
    assert outcome["due"] >= 1 and outcome["polled"] == outcome["due"]
    store = JobStore()
    assert store.get(my_job).poll_count == 1
    assert store.get(other_job).poll_count == 0  # another shard's: not this invocation's
    due_other = [item["id"] for item in store.due_jobs(time.time(), shards=[other])]
    assert other_job in due_other
