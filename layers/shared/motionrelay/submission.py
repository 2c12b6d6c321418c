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
from motionrelay.validation import JobRequest, choose_provider

SUBMIT_TIMEOUT_SECONDS = 10.0
FIRST_POLL_CALLBACK_SECONDS = 90  # a callback is expected; polling is only the safety net
FIRST_POLL_SECONDS = 20
RETRY_PLACEMENT_SECONDS = (15, 30, 60, 120, 300)


def new_job_id() -> str:
    # Time-ordered prefix keeps ids roughly sortable; 80 random bits make them unguessable.
    return f"job_{int(time.time() * 1000):011x}{secrets.token_hex(10)}"


def callback_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@tracer.capture_method(capture_response=False)
def create_job(principal: Principal, request: JobRequest, *, callback_base: str,
               store: JobStore | None = None, http_client: Any = None) -> Job:
    from motionrelay.inputs import stage_input

    settings = get_settings()
    store = store or JobStore()
    provider = choose_provider(request, settings.routing)
    caps = get_adapter(provider).capabilities
    job_id = new_job_id()
    logger.append_keys(job_id=job_id, provider=provider, tenant_id=principal.tenant_id)

    image, image_info = stage_input(job_id, "image", request.image, max_bytes=caps.max_image_bytes,
                                    allow_loopback=settings.allow_loopback)
    video, video_info = stage_input(job_id, "video", request.video, max_bytes=caps.max_video_bytes,
                                    allow_loopback=settings.allow_loopback)
    now = utc_now()
    job = store.create({
        "id": job_id,
        "tenant_id": principal.tenant_id,
        "phase": Phase.PENDING.value,
        "provider": provider,
        "request": {
            "image": image_info,
            "video": video_info,
            "character_orientation": request.character_orientation,
            "quality": request.quality,
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "keep_original_sound": request.keep_original_sound,
            "provider": request.provider,
            "webhook_url": request.webhook_url,
        },
        "inputs": {"image": image.key, "video": video.key},
        "metadata": request.metadata,
        "attempts": [],
        "created_at": iso(now),
        "updated_at": iso(now),
        "deadline_at": int(now.timestamp()) + settings.job_deadline_seconds,
        "callback_base": callback_base.rstrip("/"),
        "poll_count": 0,
    })
    count("JobsSubmitted", provider)
    return place(job, store=store, http_client=http_client)


@tracer.capture_method(capture_response=False)
def place(job: Job, *, store: JobStore | None = None, http_client: Any = None) -> Job:
    """Submit a pending job to its provider. Returns the job as it now stands."""
    import httpx

    from motionrelay.storage import presign_get

    settings = get_settings()
    store = store or JobStore()
    provider = job.provider or settings.routing[0]
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
    now = time.time()
    own_client = http_client is None
    http_client = http_client or provider_client(SUBMIT_TIMEOUT_SECONDS)
    try:
        response = http_client.send(adapter.build_submit(spec))
        task_id = adapter.parse_submit(response)
    except ProviderError as exc:
        return _placement_failed(job, store, exc.code, exc.message, retryable=exc.retryable)
    except httpx.HTTPError as exc:
        return _placement_failed(job, store, "provider_unreachable", type(exc).__name__, retryable=True)
    finally:
        if own_client:
            http_client.close()

    first_poll = FIRST_POLL_CALLBACK_SECONDS if callback_url else FIRST_POLL_SECONDS
    try:
        placed = store.update(
            job.id, from_phases=(Phase.PENDING,),
            set_values={
                "phase": Phase.QUEUED.value,
                "provider": provider,
                "provider_task_id": task_id,
                "callback_token_hash": callback_token_hash(token),
                **poll_at(job.id, now + first_poll),
            },
            append={"attempts": [{"provider": provider, "outcome": "submitted", "at": iso(utc_now())}]},
        )
    except ConditionFailed:
        # Placed meanwhile by another invocation (or canceled): this submission is surplus.
        logger.warning("job left pending before this placement finished", extra={"job_id": job.id})
        return store.get(job.id) or job
    logger.info("job placed", extra={"job_id": job.id, "provider": provider, "task_id": task_id})
    return placed


def _placement_failed(job: Job, store: JobStore, code: str, message: str, *, retryable: bool) -> Job:
    from motionrelay.lifecycle import fail

    attempt = {"provider": job.provider, "outcome": "retryable_error" if retryable else "rejected",
               "code": code, "message": message[:300], "at": iso(utc_now())}
    logger.warning("placement failed", extra={"job_id": job.id, "code": code, "retryable": retryable})
    if not retryable:
        store.update(job.id, from_phases=(Phase.PENDING,), append={"attempts": [attempt]})
        return fail(job.id, code, message, store=store, from_phases=(Phase.PENDING,)) or job
    failures = sum(1 for a in job.attempts if a.get("outcome") == "retryable_error")
    delay = RETRY_PLACEMENT_SECONDS[min(failures, len(RETRY_PLACEMENT_SECONDS) - 1)]
    try:
        return store.update(
            job.id, from_phases=(Phase.PENDING,),
            set_values=poll_at(job.id, time.time() + delay),
            append={"attempts": [attempt]},
        )
    except ConditionFailed:
        return store.get(job.id) or job
