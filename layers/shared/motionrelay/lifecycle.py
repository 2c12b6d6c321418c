"""The job's state transitions. `apply()` is the one entry point for a provider status,
whether it came from a callback (after re-fetching) or from the poller."""

from __future__ import annotations

import json
import time
from typing import Any

from motionrelay.domain.job import ACTIVE, Job, Phase, ProviderState, ProviderStatus, iso, utc_now
from motionrelay.infra.aws import client
from motionrelay.infra.jobs_table import ConditionFailed, JobStore, owed_at, poll_at
from motionrelay.notify import settle as settle_notification
from motionrelay.observability import count, logger
from motionrelay.settings import get_settings

# A job stuck in `transferring` (lost queue message) is re-enqueued after this long.
TRANSFER_SAFETY_SECONDS = 300
OWED_SECONDS = 60  # a terminal job owes its notification; the poller sweeps it after this long


def transfer_safety_seconds() -> float:
    """When a job still transferring is looked at again (its queue message may be lost); a
    schedule, so MOTIONRELAY_POLL_TIME_SCALE scales it like the polls."""
    return TRANSFER_SAFETY_SECONDS * get_settings().poll_time_scale


def terminal_schedule(job_id: str) -> dict[str, Any]:
    """What every terminal write sets instead of leaving the due index: the notification outbox
    (`notify.settle` clears it once the notification is queued, or at once when none is owed)."""
    return owed_at(job_id, time.time() + OWED_SECONDS * get_settings().poll_time_scale)


def apply(job_id: str, status: ProviderStatus, *, store: JobStore | None = None,
          source: str = "poll", reschedule_at: float | None = None, poll_count: int | None = None,
          known_phase: Phase | None = None) -> Job | None:
    """Apply a provider status. Returns the job if this call changed its phase, else None
    (a duplicate, a late event, or no change): conditional writes make that decision.

    For a job still queued or running, `reschedule_at` (the poller's next poll) is written in
    the same conditional write as the phase and progress: one write per poll. `known_phase`
    is the phase the caller last read; it only saves a write that would fail its condition."""
    store = store or JobStore()
    try:
        if status.state is ProviderState.SUCCEEDED:
            job = store.update(
                job_id, from_phases=(Phase.QUEUED, Phase.RUNNING),
                set_values=_with_cost({
                    "phase": Phase.TRANSFERRING.value,
                    "progress": 100,
                    "output_source_url": status.output_url,
                    **poll_at(job_id, time.time() + transfer_safety_seconds()),
                }, status),
            )
            enqueue_transfer(job_id)
            logger.info("provider finished; transfer queued", extra={"job_id": job_id, "source": source})
            return job
        if status.state is ProviderState.FAILED:
            job = fail(job_id, status.error_code or "provider_failed",
                       status.error_message or "The provider reported a failure.",
                       store=store, from_phases=(Phase.QUEUED, Phase.RUNNING), cost=status.cost)
            return job
        return _still_active(job_id, status, store, reschedule_at, poll_count, known_phase)
    except ConditionFailed:
        logger.info("status ignored: job already past it", extra={"job_id": job_id, "state": status.state,
                                                                  "source": source})
        return None


def _still_active(job_id: str, status: ProviderStatus, store: JobStore, reschedule_at: float | None,
                  poll_count: int | None, known_phase: Phase | None) -> Job | None:
    schedule: dict[str, Any] = {}
    if reschedule_at is not None:
        schedule = poll_at(job_id, reschedule_at)
        if poll_count is not None:
            schedule["poll_count"] = poll_count
    if status.state is ProviderState.RUNNING and known_phase is not Phase.RUNNING:
        values: dict[str, Any] = {"phase": Phase.RUNNING.value, **schedule}
        if status.progress is not None:
            values["progress"] = status.progress
        try:
            return store.update(job_id, from_phases=(Phase.QUEUED,), set_values=values)
        except ConditionFailed:
            pass  # already running (or finished): fall through
    if status.progress is not None and status.state is ProviderState.RUNNING:
        # Only a higher progress is written, never a lower one.
        try:
            store.update(
                job_id, from_phases=(Phase.RUNNING,), set_values={"progress": status.progress, **schedule},
                extra_condition=("attribute_not_exists(#prog) OR #prog < :prog",
                                 {"#prog": "progress", ":prog": status.progress}),
            )
            return None
        except ConditionFailed:
            pass
    if reschedule_at is not None:
        # Never revives a terminal job: the write is conditional on a non-terminal phase.
        store.reschedule(job_id, reschedule_at, poll_count=poll_count,
                         from_phases=(Phase.QUEUED, Phase.RUNNING))
    return None


def _with_cost(values: dict[str, Any], status: ProviderStatus) -> dict[str, Any]:
    if status.cost:
        values["cost"] = status.cost
    return values


def fail(job_id: str, code: str, message: str, *, store: JobStore | None = None,
         from_phases: tuple[Phase, ...] = ACTIVE, cost: dict | None = None) -> Job | None:
    store = store or JobStore()
    now = iso(utc_now())
    values: dict[str, Any] = {
        "phase": Phase.FAILED.value,
        "error": {"code": code, "message": message[:1000]},
        "completed_at": now,
    }
    if cost:
        values["cost"] = cost
    try:
        job = store.update(job_id, from_phases=from_phases,
                           set_values={**values, **terminal_schedule(job_id)},
                           remove=("placing_by", "placing_until", "submitting"))
    except ConditionFailed:
        return None
    count("JobsFailed", job.provider)
    logger.info("job failed", extra={"job_id": job_id, "code": code})
    settle_notification(job, store=store)  # only the write that made the job terminal gets here
    return job


def complete(job_id: str, output: dict[str, Any], *, store: JobStore | None = None) -> Job | None:
    store = store or JobStore()
    try:
        job = store.update(
            job_id, from_phases=(Phase.TRANSFERRING,),
            set_values={"phase": Phase.SUCCEEDED.value, "output": output, "completed_at": iso(utc_now()),
                        **terminal_schedule(job_id)},
            remove=("output_source_url", "transfer_lease_until"),
        )
    except ConditionFailed:
        return None
    count("JobsSucceeded", job.provider)
    count("TimeToCompletion", job.provider, value=_seconds_since(job.created_at), unit="Seconds")
    settle_notification(job, store=store)  # only the write that made the job terminal gets here
    return job


def _seconds_since(created_at: str) -> float:
    from datetime import datetime

    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (utc_now() - created).total_seconds())


def enqueue_transfer(job_id: str) -> None:
    client("sqs").send_message(
        QueueUrl=get_settings().transfer_queue_url, MessageBody=json.dumps({"job_id": job_id})
    )
