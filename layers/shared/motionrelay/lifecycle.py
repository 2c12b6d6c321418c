"""The job's state transitions. `apply()` is the one entry point for a provider status,
whether it came from a callback (after re-fetching) or from the poller."""

from __future__ import annotations

import json
import time
from typing import Any

from motionrelay.aws import client
from motionrelay.models import ACTIVE, Job, Phase, ProviderState, ProviderStatus, iso, utc_now
from motionrelay.observability import count, logger
from motionrelay.settings import get_settings
from motionrelay.store import ConditionFailed, JobStore, poll_at

# A job stuck in `transferring` (lost queue message) is re-enqueued after this long.
TRANSFER_SAFETY_SECONDS = 300
_UNSCHEDULE = ("due_shard", "next_poll_at")


def apply(job_id: str, status: ProviderStatus, *, store: JobStore | None = None,
          source: str = "poll") -> Job | None:
    """Apply a provider status. Returns the job if this call changed its phase, else None
    (a duplicate, a late event, or no change): conditional writes make that decision."""
    store = store or JobStore()
    try:
        if status.state is ProviderState.SUCCEEDED:
            job = store.update(
                job_id, from_phases=(Phase.QUEUED, Phase.RUNNING),
                set_values=_with_cost({
                    "phase": Phase.TRANSFERRING.value,
                    "progress": 100,
                    "output_source_url": status.output_url,
                    **poll_at(job_id, time.time() + TRANSFER_SAFETY_SECONDS),
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
        if status.state is ProviderState.RUNNING:
            values: dict[str, Any] = {"phase": Phase.RUNNING.value}
            if status.progress is not None:
                values["progress"] = status.progress
            try:
                return store.update(job_id, from_phases=(Phase.QUEUED,), set_values=values)
            except ConditionFailed:
                if status.progress is None:
                    return None
                # Already running: only a higher progress is written, never a lower one.
                store.update(
                    job_id, from_phases=(Phase.RUNNING,), set_values={"progress": status.progress},
                    extra_condition=("attribute_not_exists(#prog) OR #prog < :prog",
                                     {"#prog": "progress", ":prog": status.progress}),
                )
                return None
        return None  # queued: nothing to record
    except ConditionFailed:
        logger.info("status ignored: job already past it", extra={"job_id": job_id, "state": status.state,
                                                                  "source": source})
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
        job = store.update(job_id, from_phases=from_phases, set_values=values, remove=_UNSCHEDULE)
    except ConditionFailed:
        return None
    count("JobsFailed", job.provider)
    logger.info("job failed", extra={"job_id": job_id, "code": code})
    return job


def complete(job_id: str, output: dict[str, Any], *, store: JobStore | None = None) -> Job | None:
    store = store or JobStore()
    try:
        job = store.update(
            job_id, from_phases=(Phase.TRANSFERRING,),
            set_values={"phase": Phase.SUCCEEDED.value, "output": output, "completed_at": iso(utc_now())},
            remove=(*_UNSCHEDULE, "output_source_url", "transfer_lease_until"),
        )
    except ConditionFailed:
        return None
    count("JobsSucceeded", job.provider)
    return job


def enqueue_transfer(job_id: str) -> None:
    client("sqs").send_message(
        QueueUrl=get_settings().transfer_queue_url, MessageBody=json.dumps({"job_id": job_id})
    )
