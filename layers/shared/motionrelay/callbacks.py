"""Provider callbacks: verify, then re-fetch the authoritative status, then `apply()` it.

A callback is only a hint. It must be authenticated by the provider's signature (Kie's
HMAC when configured, fal's Ed25519 against its JWKS, Replicate's Standard Webhooks secret)
and/or the per-job URL token; any credential presented must be valid. Keys a provider
publishes are fetched and cached by `callback_keys` (fetched again once when none verifies:
rotated keys); when they cannot be fetched the callback is answered 503 (the provider retries)
and the poller is asked to look at the job now.
The status it carries is never trusted: the provider is asked again with our API key.
The re-fetch has a short timeout so the provider gets its answer quickly; if it is slow,
the job is put on the poller's due list for right now instead.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

from motionrelay import callback_keys
from motionrelay.domain.errors import NotFound, ProviderUnavailable, Unauthorized
from motionrelay.domain.job import Phase
from motionrelay.infra.http_clients import provider_client
from motionrelay.infra.jobs_table import JobStore
from motionrelay.lifecycle import apply, schedule_poll
from motionrelay.observability import logger, tracer
from motionrelay.providers.base import CallbackHint, CallbackKeysStale, CallbackRejected, ProviderError
from motionrelay.registry import get_adapter, known_provider
from motionrelay.submission import callback_token_hash

REFETCH_TIMEOUT_SECONDS = 0.8


@tracer.capture_method(capture_response=False)
def handle_callback(provider: str, job_id: str, headers: Mapping[str, str], raw_body: bytes,
                    query: Mapping[str, str], *, store: JobStore | None = None,
                    http_client: Any = None, now: float | None = None,
                    adapters: Callable[[str], Any] = get_adapter) -> dict[str, Any]:
    store = store or JobStore()
    now = time.time() if now is None else now
    if not known_provider(provider):
        raise NotFound(f"No callback endpoint for provider '{provider}'.")
    job = store.get(job_id)
    if job is None or job.provider != provider:
        raise NotFound("No such job.")
    adapter = adapters(provider)
    try:
        hint = _verify(provider, adapter, headers, raw_body, now)
    except callback_keys.KeysUnavailable as exc:
        schedule_poll(store, job_id, time.time())  # the poller confirms the job meanwhile
        raise ProviderUnavailable("The provider's signing keys could not be fetched; retry later.") from exc
    except CallbackRejected as exc:
        logger.warning("callback refused", extra={"job_id": job_id, "reason": str(exc)})
        raise Unauthorized("The callback could not be verified.") from exc
    _check_token(job.callback_token_hash, query.get("token"), signed=adapter.signs_callbacks)
    if not job.provider_task_id or not hmac.compare_digest(hint.task_id, job.provider_task_id):
        logger.warning("callback for another task refused", extra={"job_id": job_id})
        raise Unauthorized("The callback does not belong to this job.")

    if job.phase not in (Phase.QUEUED, Phase.RUNNING):
        return {"received": True, "applied": False}  # duplicate or late: nothing left to do
    return {"received": True, "applied": _refetch_and_apply(job.id, job.provider_task_id, adapter,
                                                            store, http_client)}


def _verify(provider: str, adapter: Any, headers: Mapping[str, str], raw_body: bytes,
            now: float) -> CallbackHint:
    """The adapter's verification, with the provider's published keys where it needs them."""
    if not hasattr(adapter, "build_callback_keys_request"):
        return adapter.verify_callback(headers, raw_body, now)
    try:
        return adapter.verify_callback(headers, raw_body, now, keys=callback_keys.keys_for(provider, adapter))
    except CallbackKeysStale:
        fresh = callback_keys.refresh(provider, adapter)  # rotated keys: fetch again, once
        if fresh is None:
            raise
        return adapter.verify_callback(headers, raw_body, now, keys=fresh)


def _check_token(stored_hash: str | None, presented: str | None, *, signed: bool) -> None:
    """The URL token must match when presented; it is required unless a signature was checked."""
    if presented is None:
        if signed:
            return
        raise Unauthorized("The callback could not be verified.")
    if not stored_hash or not hmac.compare_digest(callback_token_hash(presented), stored_hash):
        raise Unauthorized("The callback could not be verified.")


def _refetch_and_apply(job_id: str, task_id: str, adapter: Any, store: JobStore, http_client: Any) -> bool:
    import httpx

    own_client = http_client is None
    http_client = http_client or provider_client(REFETCH_TIMEOUT_SECONDS)
    try:
        response = http_client.send(adapter.build_status(task_id))
        follow = getattr(adapter, "result_request", None)  # fal: the result is a second request
        result = follow(response) if follow else None
        status = adapter.parse_status(http_client.send(result) if result is not None else response)
    except (ProviderError, httpx.HTTPError) as exc:
        # The provider is slow or erring: let the poller confirm it in its next pass.
        logger.info("callback re-fetch deferred to the poller", extra={"job_id": job_id, "error": str(exc)})
        schedule_poll(store, job_id, time.time())
        return False
    finally:
        if own_client:
            http_client.close()
    return apply(job_id, status, store=store, source="callback") is not None
