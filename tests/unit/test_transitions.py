"""The state machine on its own (domain/transitions.py): pure, no moto.

A hypothesis RuleBasedStateMachine fires random events, in random orders and with random
guard values, at one job held in memory, and checks after every step what the product
relies on: phases never go backwards, a terminal phase never changes, effects are asked for
only by a write that happened (a transfer once per entry into `transferring`, a
notification once per job), a terminal job is never back on the poll schedule."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from motionrelay.domain import transitions as t
from motionrelay.domain.job import ACTIVE, TERMINAL, Phase

AT = "2026-12-02T00:00:00.000Z"


def test_the_table_itself_never_goes_backwards():
    assert t.check_table() == []


def test_the_table_check_can_fail():
    broken = dict(t.EVENTS)
    broken["oops"] = t._event("oops", {Phase.SUCCEEDED}, Phase.QUEUED)
    original = t.EVENTS
    t.EVENTS = broken
    try:
        problems = t.check_table()
    finally:
        t.EVENTS = original
    assert any("backwards" in p for p in problems) and any("terminal" in p for p in problems)


def test_a_change_the_event_does_not_declare_is_refused():
    with pytest.raises(t.NotAllowed):
        t.change("canceled", values={"provider_task_id": "x"}, due_at=1.0, at=AT)
    with pytest.raises(t.NotAllowed):
        t.change("placed", values={}, due_at=1.0)  # no lease holder named
    with pytest.raises(t.NotAllowed):
        t.change("transfer_released", due_at=5.0)  # does not schedule the job


def test_only_the_lease_holder_places():
    job = t.apply(t.change("created", values={"id": "job_1", "placing_by": "a", "placing_until": 10.0},
                           due_at=11.0, at=AT), None)
    assert job["phase"] == "pending" and job["due_shard"] == "due#0"
    with pytest.raises(t.Refused):
        t.apply(t.change("placed", values={"provider": "kie"}, due_at=20.0, guard_value="b", at=AT), job)
    with pytest.raises(t.Refused):  # the lease is not free before it ends ...
        t.apply(t.change("placement_lease_taken", values={"placing_by": "b", "placing_until": 30.0},
                         due_at=31.0, guard_value=5.0, at=AT), job)
    taken = t.apply(t.change("placement_lease_taken", values={"placing_by": "b", "placing_until": 30.0},
                             due_at=31.0, guard_value=12.0, at=AT), job)  # ... and is after
    placed = t.apply(t.change("placed", values={"provider": "kie", "provider_task_id": "task"},
                              append={"attempts": [{"outcome": "submitted"}]}, due_at=40.0, guard_value="b",
                              at=AT), taken)
    assert placed["phase"] == "queued" and "placing_by" not in placed and placed["attempts"]


def _any_change(draw_name: str, data) -> t.Change:
    event = t.EVENTS[draw_name]
    guard_value = None
    if event.guard in (t.Guard.LEASE_FREE, t.Guard.HIGHER):
        guard_value = data.draw(st.integers(0, 100))
    elif event.guard is t.Guard.HELD_BY:
        guard_value = data.draw(st.sampled_from(["a", "b"]))
    elif event.guard is t.Guard.NOT_DELIVERED_AND_LEASE_FREE:
        guard_value = ("msg_1", data.draw(st.integers(0, 100)))
    values = {}
    if "placing_by" in event.sets:
        values = {"placing_by": data.draw(st.sampled_from(["a", "b"])), "placing_until": 50.0}
    if "progress" in event.sets and event.guard is t.Guard.HIGHER:
        values = {"progress": guard_value}
    due = data.draw(st.floats(0, 1000)) if event.due in ("due", "owed") else None
    return t.change(draw_name, values=values, due_at=due, guard_value=guard_value, at=AT)


class JobMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.job = t.apply(t.change("created", values={"id": "job_1", "placing_by": "a",
                                                       "placing_until": 50.0}, due_at=51.0, at=AT), None)
        self.history = [Phase.PENDING]
        self.transfers = 0
        self.notifications = 0
        self.entered_transferring = 0

    @rule(name=st.sampled_from(sorted(set(t.EVENTS) - {"created"})), data=st.data())
    def fire(self, name: str, data) -> None:
        change = _any_change(name, data)
        before = Phase(self.job["phase"])
        try:
            self.job = t.apply(change, self.job)
        except t.Refused:
            assert not t.allows(change, self.job)
            return
        after = Phase(self.job["phase"])
        if after is Phase.TRANSFERRING and before is not Phase.TRANSFERRING:
            self.entered_transferring += 1
        self.transfers += change.effects.count(t.Effect.ENQUEUE_TRANSFER)
        self.notifications += change.effects.count(t.Effect.SETTLE_NOTIFICATION)
        self.history.append(after)

    @invariant()
    def never_backwards(self) -> None:
        ranks = [t.RANK[p] for p in self.history]
        assert ranks == sorted(ranks)

    @invariant()
    def terminal_is_final(self) -> None:
        terminal = [p for p in self.history if p in TERMINAL]
        assert len(set(terminal)) <= 1

    @invariant()
    def one_notification_per_job(self) -> None:
        assert self.notifications == (1 if Phase(self.job["phase"]) in TERMINAL else 0)

    @invariant()
    def transfers_only_while_transferring(self) -> None:
        # One transfer per entry into `transferring`, plus the poller's safety re-checks,
        # which only a job still transferring can ask for.
        assert self.transfers >= self.entered_transferring
        if self.transfers > self.entered_transferring:
            assert Phase.TRANSFERRING in self.history

    @invariant()
    def terminal_jobs_are_not_polled(self) -> None:
        if Phase(self.job["phase"]) in TERMINAL:
            assert not str(self.job.get("due_shard", "")).startswith("due#")
        elif Phase(self.job["phase"]) in ACTIVE:
            assert str(self.job.get("due_shard", "")).startswith("due#")

    @invariant()
    def placed_once(self) -> None:
        if Phase(self.job["phase"]) is not Phase.PENDING:
            assert "placing_by" not in self.job or Phase(self.job["phase"]) in TERMINAL


JobMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_job_state_machine = JobMachine.TestCase
