"""The in-memory jobs table (tests/unit/fakes.py) against the real one: the same random script
of events, guard values and clocks through JobStore on moto and through MemoryJobStore must
give the same outcome at every step (written or refused, the job as written, the notification
state). Tests that use the fake rely on this; a fake kinder than DynamoDB would lie."""

from __future__ import annotations

import dataclasses
import random

from fakes import MemoryJobStore
from motionrelay.domain import transitions as t
from motionrelay.infra.jobs_table import ConditionFailed, JobStore

AT = "2026-12-02T00:00:00.000Z"


def _random_change(rng: random.Random, name: str) -> t.Change:
    event = t.EVENTS[name]
    guard_value = None
    if event.guard in (t.Guard.LEASE_FREE, t.Guard.HIGHER):
        guard_value = float(rng.randint(0, 100))
    elif event.guard is t.Guard.HELD_BY:
        guard_value = rng.choice(["a", "b"])
    elif event.guard is t.Guard.NOT_DELIVERED_AND_LEASE_FREE:
        guard_value = (rng.choice(["msg_1", "msg_2"]), rng.randint(0, 100))
    values: dict = {}
    if "placing_by" in event.sets:
        values = {"placing_by": rng.choice(["a", "b"]), "placing_until": 50.0}
    if "progress" in event.sets and event.guard is t.Guard.HIGHER:
        values = {"progress": int(guard_value or 0)}
    if "notify_lease_until" in event.sets:
        values = {"notify_lease_until": rng.randint(0, 100)}
    add = {"notified_ids": [rng.choice(["msg_1", "msg_2"])]} if "notified_ids" in event.adds else None
    due = float(rng.randint(0, 1000)) if event.due in ("due", "owed") else None
    return t.change(name, values=values, add=add, due_at=due, guard_value=guard_value, at=AT)


def _outcome(store, job_id: str, change: t.Change):
    try:
        job = store.write(job_id, change)
    except ConditionFailed:
        return "refused"
    if job is None:
        return "written"
    return {k: v for k, v in dataclasses.asdict(job).items() if k != "updated_at"}


def test_the_fake_table_decides_and_writes_as_the_real_one(aws):
    real, fake = JobStore(), MemoryJobStore(shards=JobStore().shards)
    rng = random.Random(11)
    names = [n for n in t.EVENTS if n != "created"]
    steps = []
    for episode in range(12):  # many short lives: a single one soon ends in a terminal phase
        job_id = f"job_{episode:032x}"
        created = t.change("created", values={
            "id": job_id, "tenant_id": "t", "placing_by": "a", "placing_until": 10.0, "created_at": AT,
            "updated_at": AT, "attempts": [], "request": {"quality": "std"}, "deadline_at": 10_000},
            due_at=11.0, at=AT)
        assert real.create(created).phase == fake.create(created).phase
        for step in range(25):
            change = _random_change(rng, rng.choice(names))
            got_real, got_fake = _outcome(real, job_id, change), _outcome(fake, job_id, change)
            steps.append((change.event.name, got_real if isinstance(got_real, str) else "job"))
            assert got_fake == got_real, (episode, step, change.event.name, steps[-10:])
            assert fake.notification_state(job_id) == real.notification_state(job_id), (episode, step)
    written = {name for name, outcome in steps if outcome != "refused"}
    assert len(written) >= 12, sorted(written)  # the script reached many kinds of event
