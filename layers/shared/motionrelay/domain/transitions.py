"""Every change of a job, as data: the state machine on one screen.

A job changes only through one of the events in `EVENTS`. Each declares the phases it may
start from, the phase it moves to (or none), the attributes it may set, add to and remove,
the extra condition it needs (a lease, a higher progress...) and the effects it asks for.
The code that changes a job does three things: build a `Change` with one of the functions
below (pure), hand it to the jobs table as one conditional write (`infra.jobs_table`, or the
in-memory table of the tests: both apply the same `Change`), then perform the returned
effects. A write whose condition fails changed nothing (a lost race, a duplicate, a late
event); phases are ranked, so no event moves a job backwards and a terminal job never
changes phase again.

Attributes that put a job on the poller's schedule are named here as `due_at` (the next
look at an active job) and `owed_at` (a terminal job owing its notification); the table
adapter turns them into its sparse index's attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from motionrelay.domain.job import ACTIVE, TERMINAL, Phase

RANK = {Phase.PENDING: 0, Phase.QUEUED: 1, Phase.RUNNING: 2, Phase.TRANSFERRING: 3,
        Phase.SUCCEEDED: 4, Phase.FAILED: 4, Phase.CANCELED: 4}
ANY_PHASE = frozenset(Phase)
AT_PROVIDER = frozenset({Phase.QUEUED, Phase.RUNNING})
LEASE_FIELDS = ("placing_by", "placing_until", "submitting")
OWED_SECONDS = 60.0  # a terminal job owes its notification; the poller sweeps it after this long


class Effect(StrEnum):
    """What a write asks for once it has succeeded (never before: a lost race asks nothing)."""

    ENQUEUE_TRANSFER = "enqueue_transfer"  # the provider finished: copy its output
    SETTLE_NOTIFICATION = "settle_notification"  # terminal: queue the client's notification


class Guard(StrEnum):
    """Conditions beyond the phase, evaluated in the same write."""

    ABSENT = "absent"  # the job does not exist yet
    LEASE_FREE = "lease_free"  # attribute missing or < now
    HELD_BY = "held_by"  # attribute == holder
    HIGHER = "higher"  # attribute missing or < value
    OWED = "owed"  # the job is in the notification outbox
    NOT_DELIVERED_AND_LEASE_FREE = "not_delivered_and_lease_free"  # notification not sent, nobody sending


@dataclass(frozen=True)
class Event:
    name: str
    from_phases: frozenset[Phase] | None  # None: the job must not exist yet
    to: Phase | None = None  # None: the phase stays
    sets: frozenset[str] = frozenset()
    removes: tuple[str, ...] = ()
    appends: frozenset[str] = frozenset()
    adds: frozenset[str] = frozenset()  # string sets
    guard: Guard | None = None
    guard_attr: str | None = None
    effects: tuple[Effect, ...] = ()
    touches: bool = True  # sets `updated_at` (bookkeeping a client cannot see does not)
    due: str | None = None  # "due" | "owed" | "leave": what it does to the poller's schedule


def _event(name: str, from_phases: Any, to: Phase | None = None, *, sets: str = "", removes: tuple = (),
           appends: str = "", adds: str = "", guard: Guard | None = None, guard_attr: str | None = None,
           effects: tuple[Effect, ...] = (), touches: bool = True, due: str | None = None) -> Event:
    phases = None if from_phases is None else frozenset(from_phases)
    if to is not None and to in TERMINAL:
        due, effects = "owed", (*effects, Effect.SETTLE_NOTIFICATION)
        sets += " completed_at"
    return Event(name, phases, to, frozenset(sets.split()), tuple(removes), frozenset(appends.split()),
                 frozenset(adds.split()), guard, guard_attr, effects, touches, due)


_FAILURE = "error cost"
# Writes only the placement lease's holder may make.
_HOLDER: dict[str, Any] = {"guard": Guard.HELD_BY, "guard_attr": "placing_by"}
EVENTS: dict[str, Event] = {e.name: e for e in (
    # -- accepting and placing ---------------------------------------------------------
    _event("created", None, Phase.PENDING, guard=Guard.ABSENT, due="due"),
    _event("placement_lease_taken", {Phase.PENDING}, sets="placing_by placing_until",
           guard=Guard.LEASE_FREE, guard_attr="placing_until", due="due"),
    _event("submit_started", {Phase.PENDING}, sets="submitting", **_HOLDER),
    _event("placed", {Phase.PENDING}, Phase.QUEUED,
           sets="provider provider_task_id callback_token_hash submitted_at callback_expected poll_count "
                "cost", removes=LEASE_FIELDS, appends="attempts", **_HOLDER, due="due"),
    _event("placement_deferred", {Phase.PENDING}, removes=LEASE_FIELDS, appends="attempts",
           **_HOLDER, due="due"),
    _event("placement_held", {Phase.PENDING}, sets="ambiguous_hold", removes=LEASE_FIELDS,
           appends="attempts", **_HOLDER, due="due"),
    _event("placement_rejected", {Phase.PENDING}, Phase.FAILED, sets=_FAILURE, removes=LEASE_FIELDS,
           appends="attempts", **_HOLDER),
    # A provider accepted a submit the placer no longer held the lease for: recorded, whatever the phase.
    _event("surplus_submit", ANY_PHASE, appends="orphaned_tasks attempts"),
    # -- at the provider ---------------------------------------------------------------
    _event("provider_running", {Phase.QUEUED}, Phase.RUNNING, sets="progress poll_count", due="due"),
    _event("provider_progress", {Phase.RUNNING}, sets="progress poll_count", guard=Guard.HIGHER,
           guard_attr="progress", due="due"),
    _event("provider_succeeded", AT_PROVIDER, Phase.TRANSFERRING, sets="progress output_source_url cost",
           effects=(Effect.ENQUEUE_TRANSFER,), due="due"),
    _event("provider_failed", AT_PROVIDER, Phase.FAILED, sets=_FAILURE),
    _event("poll_rescheduled", AT_PROVIDER, sets="poll_count", touches=False, due="due"),
    _event("poll_scheduled", ACTIVE, sets="poll_count", touches=False, due="due"),
    _event("poll_error", ACTIVE, sets="poll_errors", due="due"),
    _event("deadline_passed", {Phase.PENDING, Phase.QUEUED, Phase.RUNNING}, Phase.FAILED, sets=_FAILURE,
           removes=LEASE_FIELDS),
    # -- copying the output ------------------------------------------------------------
    _event("transfer_rechecked", {Phase.TRANSFERRING}, effects=(Effect.ENQUEUE_TRANSFER,), touches=False,
           due="due"),
    _event("transfer_started", {Phase.TRANSFERRING}, sets="transfer_lease_until", guard=Guard.LEASE_FREE,
           guard_attr="transfer_lease_until"),
    _event("transfer_released", {Phase.TRANSFERRING}, removes=("transfer_lease_until",)),
    _event("transfer_completed", {Phase.TRANSFERRING}, Phase.SUCCEEDED, sets="output",
           removes=("output_source_url", "transfer_lease_until")),
    _event("transfer_failed", {Phase.TRANSFERRING}, Phase.FAILED, sets=_FAILURE),
    _event("transfer_timed_out", {Phase.TRANSFERRING}, Phase.FAILED, sets=_FAILURE),
    # -- the client --------------------------------------------------------------------
    _event("canceled", ACTIVE, Phase.CANCELED, removes=("output_source_url", *LEASE_FIELDS)),
    # -- the notification (terminal jobs; bookkeeping a client does not see) -------------
    _event("notification_queued", TERMINAL, guard=Guard.OWED, touches=False, due="leave"),
    _event("notification_claimed", TERMINAL, sets="notify_lease_until",
           guard=Guard.NOT_DELIVERED_AND_LEASE_FREE, guard_attr="notify_lease_until", touches=False),
    _event("notification_delivered", TERMINAL, adds="notified_ids", removes=("notify_lease_until",),
           touches=False),
    _event("notification_released", TERMINAL, removes=("notify_lease_until",), touches=False),
)}


class NotAllowed(Exception):
    """A `Change` that its event does not declare (a programming error, never a lost race)."""


@dataclass(frozen=True)
class Change:
    """One conditional write: the event, the values it sets, and what to do once it is written."""

    event: Event
    values: Mapping[str, Any] = field(default_factory=dict)
    append: Mapping[str, list] = field(default_factory=dict)
    add: Mapping[str, list] = field(default_factory=dict)
    due_at: float | None = None  # on the poller's schedule at (due / owed)
    guard_value: Any = None  # the lease holder, `now` for a lease, the progress to beat, the webhook-id
    at: str | None = None  # `updated_at` (and `completed_at` on a terminal event): the caller's clock

    @property
    def from_phases(self) -> frozenset[Phase] | None:
        return self.event.from_phases

    @property
    def effects(self) -> tuple[Effect, ...]:
        return self.event.effects

    @property
    def removes(self) -> tuple[str, ...]:
        return self.event.removes

    def sets(self) -> dict[str, Any]:
        """Every attribute the write sets, phase and timestamps included."""
        values = dict(self.values)
        if self.event.to is not None:
            values["phase"] = self.event.to.value
        if self.at is not None and self.event.touches:
            values.setdefault("updated_at", self.at)
            if self.event.to in TERMINAL:
                values.setdefault("completed_at", self.at)
        return values


def change(name: str, *, values: Mapping[str, Any] | None = None, append: Mapping[str, list] | None = None,
           add: Mapping[str, list] | None = None, due_at: float | None = None, guard_value: Any = None,
           at: str | None = None) -> Change:
    """A `Change` for the event `name`, checked against what the event declares."""
    event = EVENTS[name]
    values = dict(values or {})
    undeclared = (set(values) - event.sets - {"created"} if event.name != "created" else set())
    undeclared |= set(append or {}) - event.appends
    undeclared |= set(add or {}) - event.adds
    if undeclared:
        raise NotAllowed(f"{name} may not write {sorted(undeclared)}")
    scheduled = event.due in ("due", "owed")
    if scheduled and due_at is None and name not in _DUE_OPTIONAL:
        raise NotAllowed(f"{name} needs due_at")
    if not scheduled and due_at is not None:
        raise NotAllowed(f"{name} does not schedule the job")
    if event.guard in (Guard.HELD_BY, Guard.LEASE_FREE, Guard.HIGHER, Guard.NOT_DELIVERED_AND_LEASE_FREE) \
            and guard_value is None:
        raise NotAllowed(f"{name} needs its guard value ({event.guard})")
    return Change(event, values, dict(append or {}), dict(add or {}), due_at, guard_value, at)


# Events whose schedule is part of what they may do, not of what they must do.
_DUE_OPTIONAL = frozenset({"provider_running", "provider_progress"})


# ------------------------------------------------------------------ the rules, applied in memory


class Refused(Exception):
    """The write's condition does not hold: nothing changed."""


def allows(change_: Change, item: Mapping[str, Any] | None, now: float | None = None) -> bool:
    """Whether the write's condition holds on `item` (the stored job, None when absent)."""
    event = change_.event
    if event.guard is Guard.ABSENT:
        return item is None
    if item is None or Phase(item["phase"]) not in (event.from_phases or ()):
        return False
    value = item.get(event.guard_attr) if event.guard_attr else None
    match event.guard:
        case Guard.LEASE_FREE:
            return value is None or float(value) < float(change_.guard_value)
        case Guard.HELD_BY:
            return value == change_.guard_value
        case Guard.HIGHER:
            return value is None or float(value) < float(change_.guard_value)
        case Guard.OWED:
            return str(item.get("due_shard", "")).startswith("owed#")
        case Guard.NOT_DELIVERED_AND_LEASE_FREE:
            webhook_id, at = change_.guard_value
            return webhook_id not in set(item.get("notified_ids") or ()) and (
                value is None or float(value) < float(at))
    return True


def apply(change_: Change, item: Mapping[str, Any] | None, *, shard: str = "0") -> dict[str, Any]:
    """The item after the write (pure; the in-memory jobs table and the property tests use it).
    Raises Refused when the condition does not hold."""
    if not allows(change_, item):
        raise Refused(change_.event.name)
    new = dict(item or {})
    new.update(change_.sets())
    for attr in change_.removes:
        new.pop(attr, None)
    for attr, items in change_.append.items():
        new[attr] = [*new.get(attr, []), *items]
    for attr, items in change_.add.items():
        new[attr] = sorted({*new.get(attr, ()), *items})
    due = change_.event.due
    if due == "due" and change_.due_at is not None:
        new["due_shard"], new["next_poll_at"] = f"due#{shard}", round(change_.due_at, 3)
    elif due == "owed":
        new["due_shard"], new["next_poll_at"] = f"owed#{shard}", round(float(change_.due_at or 0), 3)
    elif due == "leave":
        new.pop("due_shard", None)
        new.pop("next_poll_at", None)
    return new


def check_table() -> list[str]:
    """What is wrong with `EVENTS` itself (empty when nothing): an event that could move a
    job backwards, change a terminal phase, or leave a terminal job polled."""
    problems = []
    for event in EVENTS.values():
        for phase in event.from_phases or ():
            if event.to is not None and RANK[event.to] < RANK[phase]:
                problems.append(f"{event.name}: {phase} -> {event.to} goes backwards")
            if event.to is not None and phase in TERMINAL:
                problems.append(f"{event.name}: changes the terminal phase {phase}")
            if phase in TERMINAL and event.due == "due":
                problems.append(f"{event.name}: puts a terminal job back on the poll schedule")
        if event.to in TERMINAL and Effect.SETTLE_NOTIFICATION not in event.effects:
            problems.append(f"{event.name}: a terminal event must settle the notification")
    return problems


# ------------------------------------------------------------------ decisions (pure)


def failure(name: str, code: str, message: str, *, at: str, owed_at: float, cost: Any = None,
            attempts: list | None = None, holder: str | None = None) -> Change:
    """A failing event (`placement_rejected`, `provider_failed`, `deadline_passed`,
    `transfer_failed`, `transfer_timed_out`): the error as the client sees it."""
    values: dict[str, Any] = {"error": {"code": code, "message": message[:1000]}}
    if cost:
        values["cost"] = cost
    return change(name, values=values, append={"attempts": attempts} if attempts else None,
                  due_at=owed_at, guard_value=holder, at=at)


def provider_status(state: str, *, phase_known: Phase | None, progress: int | None, output_url: str | None,
                    cost: Any, error: tuple[str, str] | None, reschedule_at: float | None,
                    poll_count: int | None, at: str, transfer_check_at: float,
                    owed_at: float) -> list[Change]:
    """The writes to try, in order, for a provider's status (`state`: queued | running |
    succeeded | failed); the first that the table accepts is the one that happened."""
    if state == "succeeded":
        values = {"progress": 100, "output_source_url": output_url}
        if cost:
            values["cost"] = cost
        return [change("provider_succeeded", values=values, due_at=transfer_check_at, at=at)]
    if state == "failed":
        code, message = error or ("provider_failed", "The provider reported a failure.")
        return [failure("provider_failed", code, message, at=at, owed_at=owed_at, cost=cost)]
    counted = {"poll_count": poll_count} if poll_count is not None and reschedule_at is not None else {}
    changes = []
    if state == "running" and phase_known is not Phase.RUNNING:
        values = {**counted, **({"progress": progress} if progress is not None else {})}
        changes.append(change("provider_running", values=values, due_at=reschedule_at, at=at))
    if state == "running" and progress is not None:
        changes.append(change("provider_progress", values={"progress": progress, **counted},
                              due_at=reschedule_at, guard_value=progress, at=at))
    if reschedule_at is not None:
        changes.append(change("poll_rescheduled", values=counted, due_at=reschedule_at))
    return changes
