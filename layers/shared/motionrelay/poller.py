"""The scheduled poller: works through the jobs that are due, within the invocation's time.

For each due job (read from the sparse `due` index, so items read is proportional to jobs
due): place it if it is still pending, fail it past its deadline, re-enqueue a transfer that
seems lost, or fetch the provider's status and `apply()` it, then schedule its next poll.
Overlapping invocations are safe: every state change is a conditional write.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from motionrelay.http_clients import provider_client
from motionrelay.lifecycle import TRANSFER_SAFETY_SECONDS, apply, enqueue_transfer, fail
from motionrelay.models import ACTIVE, Phase
from motionrelay.observability import logger
from motionrelay.providers import get_adapter
from motionrelay.providers.base import ProviderError
from motionrelay.store import JobStore

POLL_TIMEOUT_SECONDS = 8.0
SAFETY_MARGIN_SECONDS = 10.0  # stop picking up work this long before the Lambda timeout
TRANSFER_GRACE_SECONDS = 900  # a transfer in flight may outlive the job deadline by this much
WORKERS = 8


@dataclass
class PollReport:
    due: int = 0
    polled: int = 0
    placed: int = 0
    timed_out: int = 0
    transfers_requeued: int = 0
    errors: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def next_poll_delay(poll_count: int, *, has_callbacks: bool) -> float:
    """Seconds until the next poll: a job takes 1-3 minutes at the provider, so early polls
    are spaced tens of seconds apart and back off; a provider that calls back is polled only
    as a safety net. Jitter spreads jobs submitted together."""
    if has_callbacks:
        base = min(120 * (2 ** poll_count), 600)
    else:
        base = min(15 * (1.5 ** poll_count), 120)
    return base * random.uniform(0.85, 1.15)


def run(remaining_ms: Callable[[], int], *, store: JobStore | None = None,
        http_client: Any = None, now: Callable[[], float] = time.time) -> PollReport:

    store = store or JobStore()
    report = PollReport()
    own_client = http_client is None
    http_client = http_client or provider_client(POLL_TIMEOUT_SECONDS)
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = []
            for item in store.due_jobs(now()):
                if remaining_ms() / 1000 < SAFETY_MARGIN_SECONDS + POLL_TIMEOUT_SECONDS:
                    logger.info("poller stopping before the Lambda timeout")
                    break
                report.due += 1
                futures.append(pool.submit(_poll_one, item, store, http_client, now, report))
            for future in futures:
                future.result()
    finally:
        if own_client:
            http_client.close()
    logger.info("poll pass done", extra={"report": report.__dict__})
    return report


def _poll_one(item: dict[str, Any], store: JobStore, http_client: Any, now: Callable[[], float],
              report: PollReport) -> None:
    import httpx

    job_id = item["id"]
    try:
        phase = Phase(item["phase"])
        if phase not in ACTIVE:
            return
        current = now()
        deadline = float(item.get("deadline_at", 0))
        if phase is Phase.TRANSFERRING:
            if current > deadline + TRANSFER_GRACE_SECONDS:
                fail(job_id, "timeout", "The output could not be copied before the job's deadline.",
                     store=store, from_phases=(Phase.TRANSFERRING,))
                report.timed_out += 1
                return
            enqueue_transfer(job_id)
            store.schedule_poll(job_id, current + TRANSFER_SAFETY_SECONDS)
            report.transfers_requeued += 1
            return
        if current > deadline:
            if fail(job_id, "timeout", "The job did not finish before its deadline.", store=store,
                    from_phases=(Phase.PENDING, Phase.QUEUED, Phase.RUNNING)):
                report.timed_out += 1
            return
        if phase is Phase.PENDING:
            from motionrelay.submission import place

            job = store.get(job_id)
            if job and job.phase is Phase.PENDING:
                place(job, store=store, http_client=http_client)
                report.placed += 1
            return
        adapter = get_adapter(item["provider"])
        poll_count = int(item.get("poll_count", 0)) + 1
        try:
            status = adapter.parse_status(http_client.send(adapter.build_status(item["provider_task_id"])))
        except ProviderError as exc:
            if not exc.retryable:
                fail(job_id, exc.code, exc.message, store=store, from_phases=(Phase.QUEUED, Phase.RUNNING))
                return
            delay = max(exc.retry_after or 0, next_poll_delay(poll_count, has_callbacks=False))
            store.schedule_poll(job_id, current + delay, poll_count=poll_count)
            return
        except httpx.HTTPError:
            store.schedule_poll(job_id, current + next_poll_delay(poll_count, has_callbacks=False),
                                poll_count=poll_count)
            return
        report.polled += 1
        report.outcomes[status.state.value] = report.outcomes.get(status.state.value, 0) + 1
        apply(job_id, status, store=store, source="poll")
        # Rescheduling never revives a terminal job: schedule_poll is conditional on ACTIVE.
        if status.state.value in ("queued", "running"):
            delay = next_poll_delay(poll_count, has_callbacks=adapter.capabilities.callbacks)
            store.schedule_poll(job_id, current + delay, poll_count=poll_count)
    except Exception:  # noqa: BLE001 - one bad job must not stop the pass; it stays due
        report.errors += 1
        logger.exception("poll of one job failed", extra={"job_id": job_id})
