"""Accepting a job and placing it with a provider.

Order matters for "nothing lost, nothing half-written": the request is fully validated and
its inputs staged before the job item exists; the job item exists (phase `pending`) before
any provider is called; a provider that cannot take it now leaves it `pending` for the
poller to place again, with every attempt recorded.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from motionrelay import lifecycle
from motionrelay.apikeys import Principal
from motionrelay.domain import cooldown, transitions
from motionrelay.domain.job import Job, Phase, iso, utc_now
from motionrelay.domain.schedule import first_poll_delay, next_poll_delay
from motionrelay.infra.http_clients import provider_client
from motionrelay.infra.jobs_table import ConditionFailed, JobStore
from motionrelay.observability import count, logger, tracer
from motionrelay.providers.base import ProviderError, SubmitSpec
from motionrelay.registry import get_adapter
from motionrelay.settings import get_settings
from motionrelay.validation import JobRequest, rank_providers

SUBMIT_TIMEOUT_SECONDS = 10.0
MIN_SUBMIT_SECONDS = 2.0  # no submit is started with less time than this left for it
API_SECONDS = 29.0  # the API function's timeout, when no Lambda context says otherwise
ANSWER_RESERVE_SECONDS = 1.5  # what the API keeps for its last writes and its answer
STAGING_MAX_SECONDS = 20.0  # input staging's total budget, within what the invocation has
LEASE_MARGIN_SECONDS = 5.0  # a placement lease outlives its holder's budget by this much
RETRY_PLACEMENT_SECONDS = (15, 30, 60, 120, 300)


class Budget:
    """Seconds left for work in this invocation: the Lambda context's remaining time less a
    reserve. Every submit, probe and fetch is sized to what is left (never a fixed budget)."""

    def __init__(self, remaining_ms: Callable[[], int] | None = None, *, reserve: float = 0.0,
                 default_seconds: float = API_SECONDS) -> None:
        if remaining_ms is None:
            end = time.monotonic() + default_seconds
            remaining_ms = lambda: int((end - time.monotonic()) * 1000)  # noqa: E731
        self._remaining_ms = remaining_ms
        self.reserve = reserve

    def left(self) -> float:
        return self._remaining_ms() / 1000 - self.reserve



def new_job_id() -> str:
    # Time-ordered prefix keeps ids roughly sortable; 80 random bits make them unguessable.
    return f"job_{int(time.time() * 1000):011x}{secrets.token_hex(10)}"


def callback_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def idempotent_job_id(tenant_id: str, key: str) -> str:
    """The job id an Idempotency-Key stands for: a retry after any crash finds the same job,
    whatever became of the idempotency record. (Ids are tenant-scoped: knowing one gains
    nothing outside its tenant.)"""
    return "job_" + hashlib.sha256(f"idempotency\0{tenant_id}\0{key}".encode()).hexdigest()[:31]


@tracer.capture_method(capture_response=False)
def create_job(principal: Principal, request: JobRequest, *, callback_base: str,
               store: JobStore | None = None, http_client: Any = None,
               remaining_ms: Callable[[], int] | None = None, job_id: str | None = None,
               body_sha256: str | None = None, now: Callable[[], float] = time.time) -> Job:
    """Rank providers on the request -> stage and probe each input -> rank again on the
    media facts -> write the job (on the due index, with this invocation's placement lease)
    -> place it within the time the invocation has left.

    Any refusal raises before the job item is written and before a provider is called;
    inputs staged for a refused request are deleted at once (an upload is copied to the job,
    so the client's own object stays; the lifecycle rule expires it). From the job write on, whatever dies,
    the poller finds the job when the lease ends and places it or fails it at its deadline.
    `job_id` (from an Idempotency-Key) makes the create itself idempotent: an existing job
    with that id is returned (409 if it was made from another body)."""
    from motionrelay.domain.errors import Conflict
    from motionrelay.inputs import OverCap, discard, stage_input
    from motionrelay.probe import probe_stored
    from motionrelay.validation import check_media, staging_limit, too_large

    settings = get_settings()
    store = store or JobStore()
    budget = Budget(remaining_ms, reserve=ANSWER_RESERVE_SECONDS)
    if job_id is not None:
        existing = store.get(job_id)
        if existing is not None:
            if existing.tenant_id != principal.tenant_id or (
                    body_sha256 and getattr(existing, "body_sha256", None) not in (None, body_sha256)):
                raise Conflict("This Idempotency-Key was already used with a different request body.",
                               code="idempotency_conflict", field="Idempotency-Key")
            return existing
    # Request-level limits (quality, prompts, sound) first: a 422 before any I/O.
    candidates, skipped = rank_providers(request, settings.routing)
    job_id = job_id or new_job_id()
    logger.append_keys(job_id=job_id, tenant_id=principal.tenant_id)

    keys: dict[str, str] = {}
    described: dict[str, dict[str, Any]] = {}
    media: dict[str, Any] = {}
    owned = []  # staged copies this request made, deleted if it is refused
    # Staging may use what is left after one submit's worth of time.
    staging_deadline = time.monotonic() + max(
        1.0, min(STAGING_MAX_SECONDS, budget.left() - MIN_SUBMIT_SECONDS))
    try:
        for kind in ("image", "video"):
            value = getattr(request, kind)
            try:
                stored, info = stage_input(
                    job_id, kind, value, max_bytes=staging_limit(kind, candidates),
                    allow_loopback=settings.allow_loopback, tenant_id=principal.tenant_id,
                    deadline=staging_deadline)
            except OverCap as exc:
                raise too_large(request, kind, exc.limit, settings.routing) from exc
            owned.append(stored)  # every staged input is the job's own (an upload is copied)
            # Probed as soon as staged: a bad image is refused before the video is fetched.
            media[kind] = probe_stored(kind, stored)
            check_media(media[kind], request)
            keys[kind] = stored.key
            described[kind] = {**info, **media[kind].describe()}
        candidates, media_skipped = rank_providers(request, candidates, media)
    except Exception:
        discard(owned)
        raise

    provider = candidates[0]
    logger.append_keys(provider=provider)
    started = now()
    created = datetime.fromtimestamp(started, UTC)
    holder = secrets.token_hex(8)
    lease_until = started + max(0.0, budget.left()) + LEASE_MARGIN_SECONDS
    item = {
        "id": job_id,
        "tenant_id": principal.tenant_id,
        "provider": provider,
        "candidates": candidates,
        "request": {
            "image": described["image"],
            "video": described["video"],
            "character_orientation": request.character_orientation,
            "quality": request.quality,
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "keep_original_sound": request.keep_original_sound,
            "provider": request.provider,
            "webhook_url": request.webhook_url,
        },
        "inputs": keys,
        "metadata": request.metadata,
        "attempts": skipped + media_skipped,
        "created_at": iso(created),
        "updated_at": iso(created),
        "deadline_at": int(started) + settings.job_deadline_seconds,
        "callback_base": callback_base.rstrip("/"),
        "poll_count": 0,
        "body_sha256": body_sha256,
        # Durable before any provider is called: this invocation holds the placement lease;
        # the job falls due right after it, so the poller takes over if this invocation dies.
        "placing_by": holder,
        "placing_until": round(lease_until, 3),
    }
    try:
        job = store.create(transitions.change("created", values=item, due_at=lease_until + 1))
    except ConditionFailed:  # the same Idempotency-Key, concurrently: that job is the answer
        return store.get(job_id) or Job.from_item({**item, "phase": Phase.PENDING.value})
    count("JobsSubmitted", provider)
    return place(job, store=store, http_client=http_client, budget=budget, holder=holder, now=now)


@tracer.capture_method(capture_response=False)
def place(job: Job, *, store: JobStore | None = None, http_client: Any = None,
          budget: Budget | None = None, holder: str | None = None,
          now: Callable[[], float] = time.time) -> Job:
    """Submit a pending job to the first of its candidate providers that takes it, as its only
    placer (a conditional, expiring lease: API and poller alike; `holder` when the caller
    already holds it).

    Providers in cooldown are skipped; a refused submit puts the provider in cooldown and
    moves on to the next; a final rejection (validation, moderation) fails the job with the
    provider's reason. Before each submit the job records it (provider, callback token
    hash): a placer that dies after sending leaves that mark, and whoever places next
    records the submit as `ambiguous`. An ambiguous submit fails over to the next provider
    (MOTIONRELAY_FAILOVER_ON_AMBIGUOUS, default true) or keeps the job on the first
    provider's deadline. Where the provider can say which task it made for our job id (Kling's
    external_task_id), an ambiguous submit is looked up first: a task found is the placement,
    none found means nothing was taken. If nobody takes it now, or the time left is too short for a
    submit, the job stays pending and the poller tries again with backoff until its
    deadline. Every attempt is recorded on the job. `now` is the caller's clock (the poller's)."""
    store = store or JobStore()
    budget = budget or Budget()
    if holder is None:
        holder = secrets.token_hex(8)
        started = now()
        until = started + max(0.0, budget.left()) + LEASE_MARGIN_SECONDS
        try:
            job = store.write(job.id, transitions.change(
                "placement_lease_taken", values={"placing_by": holder, "placing_until": round(until, 3)},
                due_at=until + 1, guard_value=round(started, 3), at=lifecycle.at(started)))
        except ConditionFailed:  # placed, canceled or being placed by someone else meanwhile
            return store.get(job.id) or job
    attempts: list[dict[str, Any]] = []
    candidates = list(job.candidates or [job.provider or get_settings().routing[0]])
    out_of_time = False
    own_client = http_client is None
    http_client = http_client or provider_client(SUBMIT_TIMEOUT_SECONDS)
    try:
        if job.submitting:
            # The previous placer sent a submit and died (or timed out) before its answer was kept.
            previous = str(job.submitting.get("provider"))
            verdict, found = _look_up(job, previous, http_client, budget)
            if verdict == "found":
                attempts.append(_attempt(previous, "recovered", message="an earlier placement's submit "
                                         "was taken: found by the job id"))
                return _placed(job, store, holder, previous, str(found), None, _callback_sent(job, previous),
                               attempts, token_hash=str(job.submitting.get("token_hash") or ""), now=now())
            if verdict == "absent":
                attempts.append(_attempt(previous, "not_accepted", message="an earlier placement's submit "
                                         "was not taken (looked up by the job id)"))
            else:
                attempts.append(_ambiguous_attempt(previous, "a placement ended after sending its submit"))
                if not get_settings().failover_on_ambiguous:
                    return _hold(job, store, holder, attempts, now=now())
                # Fail over: the others first; the same provider again only if nobody else takes it.
                candidates = [p for p in candidates if p != previous] + [previous]
        state = _cooldowns(candidates, store)
        for provider in candidates:
            until = cooldown.cooling(state, provider, now())
            if until is not None:
                attempts.append(_attempt(provider, "cooldown", message=f"in cooldown until {iso_ts(until)}"))
                continue
            if budget.left() < MIN_SUBMIT_SECONDS:
                out_of_time = True  # leave the rest to the poller rather than run past the invocation
                break
            token = secrets.token_urlsafe(32)
            try:
                store.write(job.id, transitions.change("submit_started", values={"submitting": {
                    "provider": provider, "token_hash": callback_token_hash(token), "at": int(now())}},
                    guard_value=holder, at=lifecycle.at(now())))
            except ConditionFailed:  # the lease was lost (expired and taken, or canceled)
                return store.get(job.id) or job
            outcome = _submit(job, provider, http_client, token, min(SUBMIT_TIMEOUT_SECONDS, budget.left()))
            token_hash = None
            if isinstance(outcome, ProviderError) and outcome.ambiguous:
                verdict, found = _look_up(job, provider, http_client, budget)
                if verdict == "found":
                    attempts.append(_attempt(provider, "recovered", code=outcome.code,
                                             message=f"{outcome.message}; the task was found by the job id"))
                    earlier = job.submitting if outcome.code == "provider_duplicate_submit" else None
                    if earlier and earlier.get("provider") == provider:  # an earlier placement's task
                        token, token_hash = None, str(earlier.get("token_hash") or "")
                    outcome = (str(found), _callback_sent(job, provider), None)
                elif verdict == "absent":
                    attempts.append(_attempt(provider, "retryable_error", code=outcome.code,
                                             message=f"{outcome.message}; not taken (looked up by job id)"))
                    continue
            if isinstance(outcome, ProviderError):
                if outcome.ambiguous:
                    attempts.append(_ambiguous_attempt(provider, outcome.message, code=outcome.code))
                    if not get_settings().failover_on_ambiguous:
                        return _hold(job, store, holder, attempts, now=now())
                    continue
                attempts.append(_attempt(provider, "retryable_error" if outcome.retryable else "rejected",
                                         code=outcome.code, message=outcome.message))
                count("SubmitFailures", provider)
                if not outcome.retryable:
                    return _rejected(job, store, holder, attempts, outcome, now=now())
                _trip(store, provider, state.get(provider, (0.0, 0))[1], outcome.retry_after, now())
                continue
            task_id, callback_expected, details = outcome
            placed = _placed(job, store, holder, provider, task_id, token, callback_expected, attempts,
                             details, now=now(), token_hash=token_hash)
            if provider in state:
                _clear(store, provider)  # after the acceptance is recorded: a failure here costs nothing
            return placed
    finally:
        if own_client:
            http_client.close()
    return _unplaced(job, store, holder, attempts, out_of_time=out_of_time, now=now())


def _callback_sent(job: Job, provider: str) -> bool:
    """Whether a submit of this job to `provider` carried a callback URL (as _submit decides)."""
    return bool(get_adapter(provider).capabilities.callbacks and job.callback_base)


def _look_up(job: Job, provider: str, http_client: Any, budget: Budget) -> tuple[str, str | None]:
    """After an ambiguous submit: ("found", task id) when the provider made a task for this job,
    ("absent", None) when it made none, ("unknown", None) when it offers no lookup (all but
    Kling) or could not say (an error, too little time left)."""
    import httpx

    adapter = get_adapter(provider)
    build = getattr(adapter, "build_lookup", None)
    if build is None or budget.left() < MIN_SUBMIT_SECONDS:
        return "unknown", None
    try:
        request = build(job.id)
        request.extensions["timeout"] = httpx.Timeout(min(SUBMIT_TIMEOUT_SECONDS, budget.left())).as_dict()
        found = adapter.parse_lookup(http_client.send(request), job.id)
    except (ProviderError, httpx.HTTPError) as exc:
        logger.warning("ambiguous submit could not be looked up",
                       extra={"provider": provider, "error": str(exc)})
        return "unknown", None
    count("AmbiguousSubmitsResolved", provider)
    return ("found", found) if found else ("absent", None)


def _cooldowns(candidates: list[str], store: JobStore) -> dict[str, tuple[float, int]]:
    """The providers' cooldowns; without them (DynamoDB refused or failed) every provider is tried."""
    try:
        return store.cooldowns(candidates)
    except Exception:  # noqa: BLE001 - best effort: a cooldown only saves a doomed request
        logger.warning("cooldowns could not be read; trying every provider", exc_info=True)
        return {}


def _trip(store: JobStore, provider: str, failures_before: int, retry_after: float | None,
          now: float) -> None:
    try:
        until = cooldown.ends(failures_before, retry_after, now, scale=get_settings().poll_time_scale)
        store.trip_cooldown(provider, until)
    except Exception:  # noqa: BLE001 - best effort: the job's own attempts are what counts
        logger.warning("cooldown could not be started", extra={"provider": provider}, exc_info=True)


def _clear(store: JobStore, provider: str) -> None:
    try:
        store.clear_cooldown(provider)
    except Exception:  # noqa: BLE001 - best effort: an expired cooldown decides by its time anyway
        logger.warning("cooldown could not be cleared", extra={"provider": provider}, exc_info=True)


# httpx errors raised before the request left (nothing can have been accepted) ...
_NOT_SENT = ("ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol", "LocalProtocolError",
             "ProxyError", "InvalidURL")


@tracer.capture_method(capture_response=False)  # errors are returned, not raised: no stack traces
def _submit(job: Job, provider: str, http_client: Any, token: str,
            timeout: float) -> tuple[str, bool, Any] | ProviderError:
    """One submit: (task id, callback expected, submit details) or the provider's error.

    Outcomes are refused (nothing was accepted: connection refused or timed out, or the
    provider's own error answer) or ambiguous (the request was sent and no definite answer
    came: a read timeout, a connection reset after sending, a 5xx without the provider's own
    error body, which is what a gateway in front of it answers)."""
    import httpx

    from motionrelay.infra.blobs import presign_get

    settings = get_settings()
    adapter = get_adapter(provider)
    callback_url = None
    if adapter.capabilities.callbacks and job.callback_base:
        callback_url = f"{job.callback_base}/v1/callbacks/{provider}/{job.id}?token={token}"
    ttl = settings.input_url_ttl_seconds
    spec = SubmitSpec(
        image_url=presign_get(job.inputs["image"], ttl)[0],
        video_url=presign_get(job.inputs["video"], ttl)[0],
        character_orientation=job.request["character_orientation"],
        quality=job.request["quality"],
        prompt=job.request.get("prompt"),
        negative_prompt=job.request.get("negative_prompt"),
        keep_original_sound=job.request.get("keep_original_sound", True),
        callback_url=callback_url,
        job_id=job.id,
        deadline_at=float(job.deadline_at) if job.deadline_at else None,
    )
    try:
        request = adapter.build_submit(spec)
        request.extensions["timeout"] = httpx.Timeout(max(1.0, timeout)).as_dict()
        response = http_client.send(request)
    except ProviderError as exc:
        return exc
    except httpx.HTTPError as exc:
        name = type(exc).__name__
        if name in _NOT_SENT:
            code = "provider_timeout" if "Timeout" in name else "provider_unreachable"
            return ProviderError(provider, code, f"submit not sent ({name})", retryable=True)
        return ProviderError(provider, "submit_ambiguous", f"submit sent, no answer ({name})",
                             retryable=True, ambiguous=True)
    try:
        task_id = adapter.parse_submit(response)
        details_of = getattr(adapter, "submit_details", None)
        details = details_of(response) if details_of else None
    except ProviderError as exc:
        if response.status_code >= 500 and not _provider_error_body(response):
            return ProviderError(provider, "submit_ambiguous",
                                 f"HTTP {response.status_code} without the provider's error body",
                                 retryable=True, http_status=response.status_code, ambiguous=True)
        return exc
    return task_id, callback_url is not None, details


def _provider_error_body(response: Any) -> bool:
    """Whether a response is the provider's own JSON answer (an object), not a gateway's page."""
    import json

    try:
        return isinstance(json.loads(response.content or b"null"), dict)
    except (ValueError, RecursionError):
        return False


def _attempt(provider: str | None, outcome: str, *, code: str | None = None,
             message: str | None = None) -> dict[str, Any]:
    attempt: dict[str, Any] = {"provider": provider, "outcome": outcome, "at": iso(utc_now())}
    if code:
        attempt["code"] = code
    if message:
        attempt["message"] = message[:300]
    return attempt


def _ambiguous_attempt(provider: str, message: str, *, code: str = "submit_ambiguous") -> dict[str, Any]:
    count("AmbiguousSubmits", provider)
    logger.warning("ambiguous submit: the provider may have accepted the job",
                   extra={"provider": provider, "code": code})
    return _attempt(provider, "ambiguous", code=code,
                    message=f"{message}; the provider may have accepted (and may charge for) it")


def iso_ts(epoch: float) -> str:
    from datetime import UTC, datetime

    return iso(datetime.fromtimestamp(epoch, UTC))


def _placed(job: Job, store: JobStore, holder: str, provider: str, task_id: str, token: str | None,
            callback_expected: bool, attempts: list[dict[str, Any]], details: Any = None, *,
            now: float, token_hash: str | None = None) -> Job:
    """`token` is the callback token the submit carried, or None with its `token_hash` (a
    submit of an earlier placement, found by lookup)."""
    caps = get_adapter(provider).capabilities
    scale = get_settings().poll_time_scale
    delay = first_poll_delay(caps, callback_expected=callback_expected, scale=scale)
    extra: dict[str, Any] = {}
    if details is not None:
        if details.cost:
            extra["cost"] = details.cost
        if details.eta_seconds and not callback_expected:
            delay = next_poll_delay(details, 0, caps, callback_expected=False, scale=scale)
    try:
        placed = store.write(job.id, transitions.change(
            "placed",
            values={
                **extra,
                "provider": provider,
                "provider_task_id": task_id,
                "callback_token_hash": token_hash if token is None else callback_token_hash(token),
                "submitted_at": int(now),
                "callback_expected": callback_expected,  # the poller's schedule depends on it
                "poll_count": 0,
            },
            append={"attempts": [*attempts, _attempt(provider, "submitted")]},
            due_at=min(now + delay, float(job.deadline_at) + 1), guard_value=holder, at=lifecycle.at(now)))
    except ConditionFailed:
        return _surplus(job, store, provider, task_id, now=now)
    logger.info("job placed", extra={"job_id": job.id, "provider": provider, "task_id": task_id})
    return placed


def _surplus(job: Job, store: JobStore, provider: str, task_id: str, *, now: float) -> Job:
    """The provider took the job but this placer lost its lease (it ran past it, or the job was
    canceled): the task is paid and nobody will collect it. The job says so."""
    count("SurplusSubmits", provider)
    logger.error("a provider accepted a submit for a job this placement no longer held",
                 extra={"job_id": job.id, "provider": provider, "task_id": task_id})
    try:
        return store.write(job.id, transitions.change("surplus_submit", append={
            "orphaned_tasks": [{"provider": provider, "task_id": task_id, "at": iso(utc_now())}],
            "attempts": [_attempt(provider, "surplus", message="accepted after this placement had ended; "
                                  "the task was not collected")]}, at=lifecycle.at(now)))
    except ConditionFailed:
        return store.get(job.id) or job


def _rejected(job: Job, store: JobStore, holder: str, attempts: list[dict[str, Any]],
              exc: ProviderError, *, now: float) -> Job:
    """A final rejection fails the job, with its attempts, in the lease holder's one write."""
    logger.warning("placement rejected", extra={"job_id": job.id, "provider": exc.provider, "code": exc.code})
    failed = lifecycle.commit(store, job.id, transitions.failure(
        "placement_rejected", exc.code, exc.message, at=lifecycle.at(now), owed_at=lifecycle.owed_at(now),
        attempts=attempts, holder=holder))
    return failed or store.get(job.id) or job


def _hold(job: Job, store: JobStore, holder: str, attempts: list[dict[str, Any]], *, now: float) -> Job:
    """MOTIONRELAY_FAILOVER_ON_AMBIGUOUS=false: no other provider is asked; the job stays pending
    until its deadline (then fails with `timeout`), as the first provider's own job would."""
    try:
        return store.write(job.id, transitions.change(
            "placement_held", values={"ambiguous_hold": True}, append={"attempts": attempts},
            due_at=float(job.deadline_at) + 1, guard_value=holder, at=lifecycle.at(now)))
    except ConditionFailed:
        return store.get(job.id) or job


def _unplaced(job: Job, store: JobStore, holder: str, attempts: list[dict[str, Any]], *,
              out_of_time: bool = False, now: float) -> Job:
    """Nobody took the job now (or this invocation has no time left for another submit): it
    stays pending and the poller retries, with backoff when nobody took it."""
    if out_of_time:
        retry_at = now + 1
        attempts.append(_attempt(None, "deferred", message="too little time left in this invocation for "
                                 "another submit; the poller continues"))
    else:
        rounds = sum(1 for a in job.attempts if a.get("outcome") == "no_provider_available")
        delay = RETRY_PLACEMENT_SECONDS[min(rounds, len(RETRY_PLACEMENT_SECONDS) - 1)]
        retry_at = now + delay * get_settings().poll_time_scale  # a schedule: scaled like the polls
        attempts.append(_attempt(None, "no_provider_available",
                                 message=f"no provider took the job; retrying at {iso_ts(retry_at)}"))
    logger.warning("job not placed yet", extra={"job_id": job.id, "retry_in": round(retry_at - now)})
    try:
        return store.write(job.id, transitions.change(
            "placement_deferred", append={"attempts": attempts}, due_at=retry_at, guard_value=holder,
            at=lifecycle.at(now)))
    except ConditionFailed:
        return store.get(job.id) or job
