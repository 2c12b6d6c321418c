"""Changing a job: a decision from `domain/transitions.py`, one conditional write, then the
effects the decision asked for. `apply()` is the one entry point for a provider status,
whether it came from a callback (after re-fetching) or from the poller."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from motionrelay.domain import transitions
from motionrelay.domain.job import Job, Phase, ProviderStatus, iso
from motionrelay.domain.transitions import Change, Effect
from motionrelay.infra import queues
from motionrelay.infra.jobs_table import ConditionFailed, JobStore
from motionrelay.notify import settle as settle_notification
from motionrelay.observability import count, logger
from motionrelay.settings import get_settings

# A job stuck in `transferring` (lost queue message) is looked at again after this long.
TRANSFER_SAFETY_SECONDS = 300
# The metric each terminal event counts (per provider).
_COUNTED = {"provider_failed": "JobsFailed", "placement_rejected": "JobsFailed",
            "deadline_passed": "JobsFailed", "transfer_failed": "JobsFailed",
            "transfer_timed_out": "JobsFailed", "transfer_completed": "JobsSucceeded",
            "canceled": "JobsCanceled"}


def at(now: float) -> str:
    """`updated_at` / `completed_at` from the caller's clock."""
    return iso(datetime.fromtimestamp(now, UTC))


def transfer_safety_seconds() -> float:
    """When a job still transferring is looked at again (its queue message may be lost); a
    schedule, so MOTIONRELAY_POLL_TIME_SCALE scales it like the polls."""
    return TRANSFER_SAFETY_SECONDS * get_settings().poll_time_scale


def owed_at(now: float) -> float:
    """When the poller's sweep queues a terminal job's notification if nobody did."""
    return now + transitions.OWED_SECONDS * get_settings().poll_time_scale


def commit(store: JobStore, job_id: str, change: Change) -> Job | None:
    """Write `change` and perform its effects. None when its condition failed (nothing
    changed, nothing performed); the job as written otherwise (None too for lean writes)."""
    try:
        job = store.write(job_id, change)
    except ConditionFailed:
        return None
    perform(change, job_id, job, store)
    return job


def perform(change: Change, job_id: str, job: Job | None, store: JobStore) -> None:
    """The effects of a write that happened: only the writer that made a transition gets here."""
    metric = _COUNTED.get(change.event.name)
    if metric and job is not None:
        count(metric, job.provider)
        if change.event.to is Phase.SUCCEEDED:
            count("TimeToCompletion", job.provider, value=_seconds_since(job.created_at), unit="Seconds")
    for effect in change.effects:
        if effect is Effect.ENQUEUE_TRANSFER:
            queues.enqueue_transfer(job_id)
        elif effect is Effect.SETTLE_NOTIFICATION and job is not None:
            settle_notification(job, store=store)


def apply(job_id: str, status: ProviderStatus, *, store: JobStore | None = None,
          source: str = "poll", reschedule_at: float | None = None, poll_count: int | None = None,
          known_phase: Phase | None = None, now: Callable[[], float] = time.time) -> Job | None:
    """Apply a provider status. Returns the job if this call changed its phase, else None
    (a duplicate, a late event, or no change): conditional writes make that decision.

    For a job still queued or running, `reschedule_at` (the poller's next poll) is written in
    the same conditional write as the phase and progress: one write per poll. `known_phase`
    is the phase the caller last read; it only saves a write that would fail its condition."""
    store = store or JobStore()
    current = now()
    error = (status.error_code or "provider_failed",
             status.error_message or "The provider reported a failure.")
    changes = transitions.provider_status(
        status.state.value, phase_known=known_phase, progress=status.progress, output_url=status.output_url,
        cost=status.cost, error=error, reschedule_at=reschedule_at, poll_count=poll_count, at=at(current),
        transfer_check_at=current + transfer_safety_seconds(), owed_at=owed_at(current))
    for change in changes:  # the first write whose condition holds is what happened
        try:
            job = store.write(job_id, change)
        except ConditionFailed:
            continue
        perform(change, job_id, job, store)
        if change.event.name == "provider_succeeded":
            logger.info("provider finished; transfer queued", extra={"job_id": job_id, "source": source})
        elif change.event.name == "provider_failed":
            logger.info("job failed", extra={"job_id": job_id, "code": error[0]})
        return job if change.event.to is not None else None
    logger.info("status ignored: job already past it", extra={"job_id": job_id, "state": status.state,
                                                              "source": source})
    return None


def fail(job_id: str, code: str, message: str, *, event: str, store: JobStore | None = None,
         cost: dict | None = None, now: float | None = None) -> Job | None:
    """A failing event of `domain/transitions.py` (its name says from which phases)."""
    current = time.time() if now is None else now
    change = transitions.failure(event, code, message, at=at(current), owed_at=owed_at(current), cost=cost)
    job = commit(store or JobStore(), job_id, change)
    if job is not None:
        logger.info("job failed", extra={"job_id": job_id, "code": code})
    return job


def complete(job_id: str, output: dict[str, Any], *, store: JobStore | None = None,
             now: float | None = None) -> Job | None:
    current = time.time() if now is None else now
    return commit(store or JobStore(), job_id, transitions.change(
        "transfer_completed", values={"output": output}, due_at=owed_at(current), at=at(current)))


def _seconds_since(created_at: str) -> float:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - created).total_seconds())


def schedule_poll(store: JobStore, job_id: str, due_at: float, *, poll_count: int | None = None) -> bool:
    """Put an active job (back) on the poller's schedule; False when it is no longer active
    (a terminal job never reappears on the due index)."""
    values = {"poll_count": poll_count} if poll_count is not None else None
    try:
        store.write(job_id, transitions.change("poll_scheduled", values=values, due_at=due_at))
    except ConditionFailed:
        return False
    return True
