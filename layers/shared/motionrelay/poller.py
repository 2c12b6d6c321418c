"""The scheduled poller: works through the jobs that are due, within the invocation's time.

Due jobs are read from the sparse `due` index (a Query per shard: items read are the jobs
due, never the table). Status requests go out concurrently on one `httpx.AsyncClient`,
bounded per provider; a 429 pauses that provider for its `Retry-After`. Each answer goes
through the same `apply()` as callbacks, in one conditional write that also plans the next
poll from the provider's ETA or progress. When the pass is done and a job falls due before
the invocation's time runs out, the poller waits for it and goes again, so jobs can be
polled more often than the once-a-minute schedule; it stops with a margin before the
Lambda timeout. Overlapping invocations are safe: every state change is a conditional write.

Shards are the unit of parallel work. The scheduled tick (`fan_out`) sends one SQS message
per shard of the due index whose lease is free; each message starts one poll invocation
(`run_shard`) that takes the shard's lease (`POLLER#<k>` in the jobs table), polls only that
shard within its time, and releases it (or, when it ran out of due jobs early, keeps it
until it would have ended: idle shards cost no invocations). A message older than the tick
period is stale and
dropped; one whose shard is leased is dropped too (its holder covers the shard), so
overlapping or duplicated ticks only cost a refused lease.

DynamoDB and placement (a synchronous submit, with failover) run in worker threads; the
event loop only waits on them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from motionrelay.domain import transitions
from motionrelay.domain.job import ACTIVE, Phase, ProviderState
from motionrelay.domain.schedule import next_poll_delay
from motionrelay.infra.jobs_table import ConditionFailed, JobStore
from motionrelay.lifecycle import apply, commit, fail, perform, schedule_poll, transfer_safety_seconds
from motionrelay.observability import logger
from motionrelay.providers.base import ProviderError
from motionrelay.registry import get_adapter
from motionrelay.settings import get_settings

POLL_TIMEOUT_SECONDS = 8.0
MIN_REQUEST_SECONDS = 1.0  # no request is started with less time than this for it
SAFETY_MARGIN_SECONDS = 1.5  # left over for the last writes and the handler's return
TRANSFER_GRACE_SECONDS = 900  # a transfer in flight may outlive the job deadline by this much
DB_WORKERS = 16
CONNECTIONS_PER_CLIENT = 10
STALE_WAIT_SECONDS = 0.5
ERROR_BACKOFF_SECONDS = (30, 60, 120, 300, 600)  # a job whose handling raised, by consecutive errors
OWED_NOTIFICATION_SECONDS = 60  # a notification owed for this long without being queued is swept


STALE_MESSAGE_SECONDS = 60  # a shard message older than the tick period: the next tick's turn


@dataclass
class PollReport:
    due: int = 0
    items_read: int = 0
    polled: int = 0
    passes: int = 0
    placed: int = 0
    timed_out: int = 0
    transfers_requeued: int = 0
    rate_limited: int = 0
    errors: int = 0
    stale: int = 0  # index entries skipped: handled in this invocation, not due again since
    notifications_swept: int = 0
    idle_until: float | None = None  # ended early: nothing was due before this time
    outcomes: dict[str, int] = field(default_factory=dict)

    def outcome(self, name: str) -> None:
        self.outcomes[name] = self.outcomes.get(name, 0) + 1


class ProviderGate:
    """At most `limit` requests in flight to one provider, and a pause after a 429.

    The provider's connections are spread over several small `AsyncClient`s: httpcore's
    pool checks every connection on each request, so one pool of 50 connections cost
    ~6 ms of CPU per request where five pools of 10 cost ~1 ms (bench/poller.py)."""

    def __init__(self, limit: int, shared_client: Any = None) -> None:
        from motionrelay.infra.http_clients import async_provider_client

        self.slots = asyncio.Semaphore(limit)
        self.paused_until = 0.0  # time.monotonic()
        self.shared = shared_client
        self.clients = [] if shared_client is not None else [
            async_provider_client(POLL_TIMEOUT_SECONDS, max_connections=CONNECTIONS_PER_CLIENT)
            for _ in range(-(-limit // CONNECTIONS_PER_CLIENT))
        ]
        self._next = 0

    def client(self) -> Any:
        if self.shared is not None:
            return self.shared
        self._next = (self._next + 1) % len(self.clients)
        return self.clients[self._next]

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def pause_left(self) -> float:
        return max(0.0, self.paused_until - time.monotonic())


def run(remaining_ms: Callable[[], int], *, store: JobStore | None = None, http_client: Any = None,
        now: Callable[[], float] = time.time, shards: Sequence[int] | None = None) -> PollReport:
    """Entry point for the handler: `remaining_ms` is the Lambda context's clock; `shards` the
    due-index shards this invocation polls (None: all of them)."""
    return asyncio.run(_Poller(remaining_ms, store or JobStore(), http_client, now, shards).run())


def fan_out(*, store: JobStore | None = None, now: Callable[[], float] = time.time) -> list[int]:
    """The tick: one message `{"shard", "sent_at"}` per shard whose lease is free (a leased
    shard has a running poll invocation). Returns the shards sent."""
    from motionrelay.infra.queues import send_batch

    store = store or JobStore()
    current = now()
    leases = store.shard_leases(range(store.shards))
    free = [k for k in range(store.shards) if leases.get(k, 0.0) <= current]
    send_batch(get_settings().poll_shard_queue_url,
               [{"shard": k, "sent_at": round(current, 3)} for k in free])
    logger.info("tick", extra={"shards_sent": len(free), "shards_leased": store.shards - len(free)})
    return free


def run_shard(message: dict[str, Any], remaining_ms: Callable[[], int], *, store: JobStore | None = None,
              http_client: Any = None, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """One shard-fan-out message: poll its shard, under the shard's lease, within this
    invocation's time. Returns `{"shard", "outcome": "polled" | "stale" | "leased", ...report}`."""
    store = store or JobStore()
    shard = int(message["shard"])
    current = now()
    if current - float(message["sent_at"]) > STALE_MESSAGE_SECONDS:  # a later tick has the shard
        return {"shard": shard, "outcome": "stale"}
    holder = uuid.uuid4().hex
    if not store.take_shard_lease(shard, holder, current + remaining_ms() / 1000, current):
        return {"shard": shard, "outcome": "leased"}
    report = None
    try:
        report = run(remaining_ms, store=store, http_client=http_client, now=now, shards=[shard])
    finally:
        # Ended early with nothing due before `idle_until`: the shard stays covered until then
        # (as if this invocation had slept through it), so ticks send no message for an idle
        # shard, and the next invocation starts where this one's look-ahead ended. Otherwise
        # (time up, or an error) the shard is free now.
        if report is not None and report.idle_until is not None:
            store.take_shard_lease(shard, holder, report.idle_until, now())
        else:
            store.release_shard_lease(shard, holder)
    return {"shard": shard, "outcome": "polled", **report.__dict__}


class _Poller:
    def __init__(self, remaining_ms: Callable[[], int], store: JobStore, http_client: Any,
                 now: Callable[[], float], shards: Sequence[int] | None = None) -> None:
        self.shards = None if shards is None else list(shards)
        # Passed only when set: the store's queries cover every shard by default.
        self.scope: dict[str, Any] = {} if shards is None else {"shards": self.shards}
        self.remaining_ms = remaining_ms
        self.store = store
        self.http = http_client
        self.now = now
        self.report = PollReport()
        self.gates: dict[str, ProviderGate] = {}
        self.settings = get_settings()
        # job id -> the next_poll_at its index entry had when this invocation handled it: an
        # entry not newer than that is stale and is not handled again.
        self.handled: dict[str, float] = {}

    def remaining(self) -> float:
        """Seconds this invocation may still use for new work."""
        return self.remaining_ms() / 1000 - SAFETY_MARGIN_SECONDS

    async def run(self) -> PollReport:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=DB_WORKERS, thread_name_prefix="poller-db")
        loop.set_default_executor(executor)
        try:
            await loop.run_in_executor(None, self._sweep_owed)
            while self.remaining() >= MIN_REQUEST_SECONDS:
                read = await loop.run_in_executor(None, self._read_due)
                due = [item for item in read if not self._handled_already(item)]
                if due:
                    self.report.passes += 1
                    await asyncio.gather(*(self._one(item) for item in due))
                    continue
                if read:
                    # Only entries this invocation has handled: the index has not caught up
                    # with their new schedule yet (GSIs are eventually consistent). Let it.
                    self.report.stale += len(read)
                    spare = max(0.0, self.remaining() - MIN_REQUEST_SECONDS)
                    await asyncio.sleep(min(STALE_WAIT_SECONDS, spare))
                    continue
                # Nothing due now: wait for the next job due within this invocation, if any.
                horizon = self.now() + self.remaining() - MIN_REQUEST_SECONDS
                next_at, read = await loop.run_in_executor(
                    None, partial(self.store.next_due_at, horizon, **self.scope))
                self.report.items_read += read
                if next_at is None:
                    # Nothing due before this invocation would end: it may end now, and what
                    # it would have covered (up to `horizon`) is the next one's to poll.
                    self.report.idle_until = round(horizon, 3)
                    break
                await asyncio.sleep(max(0.0, next_at - self.now()) + 0.05)
        finally:
            for gate in self.gates.values():
                for client in gate.clients:
                    await client.aclose()
            executor.shutdown(wait=True)
        if self.remaining() < MIN_REQUEST_SECONDS:
            logger.info("poller stopping before the Lambda timeout")
        logger.info("poll pass done", extra={"report": self.report.__dict__})
        return self.report

    def _read_due(self) -> list[dict[str, Any]]:
        items = list(self.store.due_jobs(self.now(), **self.scope))
        self.report.items_read += len(items)
        return items

    def _gate(self, provider: str) -> ProviderGate:
        if provider not in self.gates:
            self.gates[provider] = ProviderGate(self.settings.poll_limit(provider), self.http)
        return self.gates[provider]

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))

    # ------------------------------------------------------------------ one job

    def _handled_already(self, item: dict[str, Any]) -> bool:
        seen = self.handled.get(item["id"])
        return seen is not None and float(item.get("next_poll_at", 0)) <= seen

    def _sweep_owed(self) -> None:
        """The notification outbox: queue what a terminal write owed and did not queue (its
        writer died or SQS failed) more than a minute ago. The notifier dedupes by webhook-id."""
        from motionrelay.notify import settle

        for item in self.store.owed_jobs(self.now(), **self.scope):
            self.report.items_read += 1
            job = self.store.get(item["id"])
            if job is not None and job.phase.terminal:
                settle(job, store=self.store)
                self.report.notifications_swept += 1

    async def _one(self, item: dict[str, Any]) -> None:
        job_id = item["id"]
        self.handled[job_id] = float(item.get("next_poll_at", 0))
        try:
            phase = Phase(item["phase"])
            if phase not in ACTIVE:
                return
            self.report.due += 1
            current = self.now()
            deadline = float(item.get("deadline_at", 0))
            if phase is Phase.TRANSFERRING:
                await self._db(self._transfer_check, job_id, current, deadline)
            elif current > deadline:
                if await self._db(fail, job_id, "timeout", "The job did not finish before its deadline.",
                                  store=self.store, event="deadline_passed", now=current):
                    self.report.timed_out += 1
            elif phase is Phase.PENDING or not item.get("provider_task_id"):
                await self._db(self._place, job_id)
            else:
                await self._poll(item, phase, current)
        except Exception:  # noqa: BLE001 - one bad job must not stop the pass
            self.report.errors += 1
            context = {"job_id": job_id, "provider": item.get("provider"), "tenant_id": item.get("tenant_id")}
            logger.exception("poll of one job failed", extra=context)
            try:
                await self._db(self._back_off, job_id)
            except Exception:  # noqa: BLE001 - it stays due; this invocation will not handle it again
                logger.exception("could not back off a failing job", extra=context)

    def _back_off(self, job_id: str) -> None:
        """Exponential backoff for a job whose handling raised, counted on the job."""
        job = self.store.get(job_id)
        if job is None or job.phase.terminal:
            return
        errors = job.poll_errors + 1
        step = ERROR_BACKOFF_SECONDS[min(errors, len(ERROR_BACKOFF_SECONDS)) - 1]
        delay = step * self.settings.poll_time_scale
        commit(self.store, job_id, transitions.change("poll_error", values={"poll_errors": errors},
                                                      due_at=self.now() + delay))

    def _transfer_check(self, job_id: str, current: float, deadline: float) -> None:
        if current > deadline + TRANSFER_GRACE_SECONDS:
            if fail(job_id, "timeout", "The output could not be copied before the job's deadline.",
                    store=self.store, event="transfer_timed_out", now=current):
                self.report.timed_out += 1
            return
        # Still transferring after the safety delay: the queue message may be lost.
        change = transitions.change("transfer_rechecked", due_at=current + transfer_safety_seconds())
        try:
            self.store.write(job_id, change)
        except ConditionFailed:
            return  # finished meanwhile
        perform(change, job_id, None, self.store)  # the transfer, queued again
        self.report.transfers_requeued += 1

    def _place(self, job_id: str) -> None:
        from motionrelay.submission import Budget, place

        job = self.store.get(job_id)
        if job is None or job.phase is not Phase.PENDING:
            return
        if job.ambiguous_hold:  # kept on its first provider's deadline (no failover)
            schedule_poll(self.store, job_id, float(job.deadline_at) + 1)
            return
        # Within this invocation's time; the lease keeps overlapping placers (API, pollers) apart.
        place(job, store=self.store, budget=Budget(self.remaining_ms, reserve=SAFETY_MARGIN_SECONDS),
              now=self.now)
        self.report.placed += 1

    async def _poll(self, item: dict[str, Any], phase: Phase, current: float) -> None:
        import httpx

        job_id, provider = item["id"], item["provider"]
        adapter = get_adapter(provider)
        # Whether this job's submit carried a callback URL (recorded at placement), not a guess
        # from settings: with PublicUrl empty the API's own domain is still called back.
        callback_expected = bool(item.get("callback_expected"))
        poll_count = int(item.get("poll_count", 0)) + 1
        gate = self._gate(provider)
        running_for = current - float(item["submitted_at"]) if item.get("submitted_at") else None

        async with gate.slots:
            wait = gate.pause_left()
            budget = self.remaining() - wait
            if budget < MIN_REQUEST_SECONDS:
                # Not enough time left to ask (the provider is paused or we are near the timeout).
                await self._db(schedule_poll, self.store, job_id, self.now() + max(wait, 1.0))
                return
            if wait:
                await asyncio.sleep(wait)
            try:
                request = adapter.build_status(item["provider_task_id"])
                request.extensions["timeout"] = httpx.Timeout(min(POLL_TIMEOUT_SECONDS, budget)).as_dict()
                response = await gate.client().send(request)
                follow = getattr(adapter, "result_request", None)  # fal: the result is a second request
                result = follow(response) if follow else None
                if result is not None:
                    result.extensions["timeout"] = request.extensions["timeout"]
                    response = await gate.client().send(result)
                status = adapter.parse_status(response)
            except ProviderError as exc:
                await self._provider_error(job_id, exc, gate, poll_count, callback_expected, adapter)
                return
            except httpx.HTTPError:
                delay = next_poll_delay(None, poll_count, adapter.capabilities, callback_expected=False,
                                        scale=self.settings.poll_time_scale)
                await self._db(schedule_poll, self.store, job_id, self.now() + delay, poll_count=poll_count)
                return
        self.report.polled += 1
        self.report.outcome(status.state.value)
        reschedule_at = None
        if status.state in (ProviderState.QUEUED, ProviderState.RUNNING):
            reschedule_at = self.now() + next_poll_delay(status, poll_count, adapter.capabilities,
                                                         callback_expected=callback_expected,
                                                         running_for=running_for,
                                                         scale=self.settings.poll_time_scale)
            # Never past the deadline: a job whose callback is lost still fails on time.
            reschedule_at = min(reschedule_at, float(item.get("deadline_at") or reschedule_at) + 1)
        await self._db(apply, job_id, status, store=self.store, source="poll", reschedule_at=reschedule_at,
                       poll_count=poll_count, known_phase=phase, now=self.now)

    async def _provider_error(self, job_id: str, exc: ProviderError, gate: ProviderGate, poll_count: int,
                              callback_expected: bool, adapter: Any) -> None:
        if not exc.retryable:
            await self._db(fail, job_id, exc.code, exc.message, store=self.store, event="provider_failed",
                           now=self.now())
            return
        if exc.http_status == 429 or exc.code == "provider_rate_limited":
            self.report.rate_limited += 1
            gate.pause(exc.retry_after if exc.retry_after is not None else 5.0)
        delay = max(exc.retry_after or 0.0,
                    next_poll_delay(None, poll_count, adapter.capabilities, callback_expected=False,
                                    scale=self.settings.poll_time_scale))
        await self._db(schedule_poll, self.store, job_id, self.now() + delay, poll_count=poll_count)
