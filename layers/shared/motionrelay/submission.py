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
from typing import Any

from motionrelay.apikeys import Principal
from motionrelay.http_clients import provider_client
from motionrelay.models import Job, Phase, iso, utc_now
from motionrelay.observability import count, logger, tracer
from motionrelay.providers import get_adapter
from motionrelay.providers.base import ProviderError, SubmitSpec
from motionrelay.settings import get_settings
from motionrelay.store import ConditionFailed, JobStore, poll_at
from motionrelay.validation import JobRequest, rank_providers

SUBMIT_TIMEOUT_SECONDS = 10.0
PLACEMENT_BUDGET_SECONDS = 15.0  # the API function has 29 s; what is left goes to the poller
RETRY_PLACEMENT_SECONDS = (15, 30, 60, 120, 300)


def new_job_id() -> str:
    # Time-ordered prefix keeps ids roughly sortable; 80 random bits make them unguessable.
    return f"job_{int(time.time() * 1000):011x}{secrets.token_hex(10)}"


def callback_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@tracer.capture_method(capture_response=False)
def create_job(principal: Principal, request: JobRequest, *, callback_base: str,
               store: JobStore | None = None, http_client: Any = None) -> Job:
    """Rank providers on the request -> stage and probe each input -> rank again on the
    media facts -> write the job (first candidate, full candidate list, skipped providers
    as attempts) -> place it.

    Any refusal raises before the job item is written and before a provider is called;
    inputs staged for a refused request are deleted at once (uploads stay: they are the
    client's, and the lifecycle rule expires them)."""
    from motionrelay.inputs import OverCap, discard, is_upload, stage_input
    from motionrelay.probe import probe_stored
    from motionrelay.validation import check_media, staging_limit, too_large

    settings = get_settings()
    store = store or JobStore()
    # Request-level limits (quality, prompts, sound) first: a 422 before any I/O.
    candidates, skipped = rank_providers(request, settings.routing)
    job_id = new_job_id()
    logger.append_keys(job_id=job_id, tenant_id=principal.tenant_id)

    keys: dict[str, str] = {}
    described: dict[str, dict[str, Any]] = {}
    media: dict[str, Any] = {}
    owned = []  # staged copies this request made, deleted if it is refused
    try:
        for kind in ("image", "video"):
            value = getattr(request, kind)
            try:
                stored, info = stage_input(
                    job_id, kind, value, max_bytes=staging_limit(kind, candidates),
                    allow_loopback=settings.allow_loopback, tenant_id=principal.tenant_id)
            except OverCap as exc:
                raise too_large(request, kind, exc.limit, settings.routing) from exc
            if not is_upload(value):
                owned.append(stored)
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
    now = utc_now()
    job = store.create({
        "id": job_id,
        "tenant_id": principal.tenant_id,
        "phase": Phase.PENDING.value,
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
        "created_at": iso(now),
        "updated_at": iso(now),
        "deadline_at": int(now.timestamp()) + settings.job_deadline_seconds,
        "callback_base": callback_base.rstrip("/"),
        "poll_count": 0,
    })
    count("JobsSubmitted", provider)
    return place(job, store=store, http_client=http_client)


@tracer.capture_method(capture_response=False)
def place(job: Job, *, store: JobStore | None = None, http_client: Any = None,
          budget_seconds: float = PLACEMENT_BUDGET_SECONDS) -> Job:
    """Submit a pending job to the first of its candidate providers that takes it.

    Providers in cooldown are skipped; a retryable failure puts the provider in cooldown
    and moves on to the next; a final rejection (validation, moderation) fails the job with
    the provider's reason. If nobody takes it now, the job stays pending and the poller
    tries again with backoff until its deadline. Every attempt is recorded on the job."""
    from motionrelay import cooldown

    store = store or JobStore()
    candidates = job.candidates or [job.provider or get_settings().routing[0]]
    state = cooldown.read(candidates)
    attempts: list[dict[str, Any]] = []
    started = time.monotonic()
    own_client = http_client is None
    http_client = http_client or provider_client(SUBMIT_TIMEOUT_SECONDS)
    try:
        for provider in candidates:
            until = cooldown.cooling(state, provider)
            if until is not None:
                attempts.append(_attempt(provider, "cooldown", message=f"in cooldown until {iso_ts(until)}"))
                continue
            if time.monotonic() - started > budget_seconds:
                break  # leave the rest to the poller rather than run past the caller's timeout
            outcome = _submit(job, provider, http_client)
            if isinstance(outcome, ProviderError):
                attempts.append(_attempt(provider, "retryable_error" if outcome.retryable else "rejected",
                                         code=outcome.code, message=outcome.message))
                count("SubmitFailures", provider)
                if not outcome.retryable:
                    return _rejected(job, store, attempts, outcome)
                cooldown.trip(provider, state.get(provider, (0.0, 0))[1], outcome.retry_after)
                continue
            if provider in state:
                cooldown.clear(provider)
            task_id, token, callback_expected, details = outcome
            return _placed(job, store, provider, task_id, token, callback_expected, attempts, details)
    finally:
        if own_client:
            http_client.close()
    return _unplaced(job, store, attempts)


@tracer.capture_method(capture_response=False)  # errors are returned, not raised: no stack traces
def _submit(job: Job, provider: str, http_client: Any) -> tuple[str, str, bool, Any] | ProviderError:
    """One submit: (task id, callback token, callback expected, submit details) or the
    provider's error."""
    import httpx

    from motionrelay.storage import presign_get

    settings = get_settings()
    adapter = get_adapter(provider)
    token = secrets.token_urlsafe(32)
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
    )
    try:
        response = http_client.send(adapter.build_submit(spec))
        task_id = adapter.parse_submit(response)
        details_of = getattr(adapter, "submit_details", None)
        details = details_of(response) if details_of else None
    except ProviderError as exc:
        return exc
    except httpx.TimeoutException as exc:
        return ProviderError(provider, "provider_timeout", f"submit timed out ({type(exc).__name__})",
                             retryable=True)
    except httpx.HTTPError as exc:
        return ProviderError(provider, "provider_unreachable", type(exc).__name__, retryable=True)
    return task_id, token, callback_url is not None, details


def _attempt(provider: str | None, outcome: str, *, code: str | None = None,
             message: str | None = None) -> dict[str, Any]:
    attempt: dict[str, Any] = {"provider": provider, "outcome": outcome, "at": iso(utc_now())}
    if code:
        attempt["code"] = code
    if message:
        attempt["message"] = message[:300]
    return attempt


def iso_ts(epoch: float) -> str:
    from datetime import UTC, datetime

    return iso(datetime.fromtimestamp(epoch, UTC))


def _placed(job: Job, store: JobStore, provider: str, task_id: str, token: str, callback_expected: bool,
            attempts: list[dict[str, Any]], details: Any = None) -> Job:
    from motionrelay.schedule import first_poll_delay, next_poll_delay

    now = time.time()
    caps = get_adapter(provider).capabilities
    delay = first_poll_delay(caps, callback_expected=callback_expected)
    extra: dict[str, Any] = {}
    if details is not None:
        if details.cost:
            extra["cost"] = details.cost
        if details.eta_seconds and not callback_expected:
            delay = next_poll_delay(details, 0, caps, callback_expected=False)
    try:
        placed = store.update(
            job.id, from_phases=(Phase.PENDING,),
            set_values={
                **extra,
                "phase": Phase.QUEUED.value,
                "provider": provider,
                "provider_task_id": task_id,
                "callback_token_hash": callback_token_hash(token),
                "submitted_at": int(now),
                "callback_expected": callback_expected,  # the poller's schedule depends on it
                "poll_count": 0,
                **poll_at(job.id, now + delay),
            },
            append={"attempts": [*attempts, _attempt(provider, "submitted")]},
        )
    except ConditionFailed:
        # Placed meanwhile by another invocation (or canceled): this submission is surplus.
        logger.warning("job left pending before this placement finished", extra={"job_id": job.id})
        return store.get(job.id) or job
    logger.info("job placed", extra={"job_id": job.id, "provider": provider, "task_id": task_id})
    return placed


def _rejected(job: Job, store: JobStore, attempts: list[dict[str, Any]], exc: ProviderError) -> Job:
    from motionrelay.lifecycle import fail

    logger.warning("placement rejected", extra={"job_id": job.id, "provider": exc.provider, "code": exc.code})
    try:
        store.update(job.id, from_phases=(Phase.PENDING,), append={"attempts": attempts})
    except ConditionFailed:
        return store.get(job.id) or job
    return fail(job.id, exc.code, exc.message, store=store, from_phases=(Phase.PENDING,)) or job


def _unplaced(job: Job, store: JobStore, attempts: list[dict[str, Any]]) -> Job:
    """Nobody took the job now: it stays pending and the poller retries with backoff."""
    rounds = sum(1 for a in job.attempts if a.get("outcome") == "no_provider_available")
    delay = RETRY_PLACEMENT_SECONDS[min(rounds, len(RETRY_PLACEMENT_SECONDS) - 1)]
    retry_at = time.time() + delay
    attempts.append(_attempt(None, "no_provider_available",
                             message=f"no provider took the job; retrying at {iso_ts(retry_at)}"))
    logger.warning("job not placed yet", extra={"job_id": job.id, "retry_in": delay})
    try:
        return store.update(job.id, from_phases=(Phase.PENDING,), set_values=poll_at(job.id, retry_at),
                            append={"attempts": attempts})
    except ConditionFailed:
        return store.get(job.id) or job
