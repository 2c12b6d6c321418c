"""Copying a finished video from the provider's short-lived URL into our bucket.

Retry-safe by construction:
- the object key is a function of the job id, so a retry overwrites instead of adding;
- a retry that finds the object already there (a crash between copy and state write)
  does not copy again: it hashes what is stored and completes the job;
- a lease on the job keeps a second concurrent delivery of the message from copying too;
- the state write is conditional on `transferring`, so it happens once.
"""

from __future__ import annotations

import time
from typing import Any

from motionrelay.domain import transitions
from motionrelay.domain.errors import MotionRelayError
from motionrelay.domain.job import Phase
from motionrelay.domain.media import VIDEO_TYPES, sniff
from motionrelay.infra import queues
from motionrelay.infra.blobs import EmptyContent, StoredObject, delete, head, sha256_of, stream_upload
from motionrelay.infra.jobs_table import ConditionFailed, JobStore
from motionrelay.infra.resources import OUTPUT_PREFIX, TRANSFER_FUNCTION_TIMEOUT
from motionrelay.lifecycle import at, complete, fail
from motionrelay.observability import count, logger, tracer
from motionrelay.settings import get_settings

DOWNLOAD_TIMEOUT_SECONDS = 60.0
_ACCEPTED_DECLARED = ("video/", "application/octet-stream", "binary/octet-stream")


class TransferRetry(Exception):
    """A transient failure: the message goes back to the queue and is retried (after
    `delay` seconds when set: the handler hides the message that long)."""

    def __init__(self, message: str, *, delay: int | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class NotVideo(MotionRelayError):
    status = 502
    code = "invalid_output"


def output_key(job_id: str) -> str:
    return f"{OUTPUT_PREFIX}{job_id}.mp4"


@tracer.capture_method(capture_response=False)
def transfer_job(job_id: str, *, store: JobStore | None = None, http_client: Any = None,
                 remaining_ms: Any = None) -> str:
    """Returns what happened: 'done', 'skipped' or 'failed'. Raises TransferRetry to retry.
    `remaining_ms` (the Lambda context's clock) sizes the lease: it ends when this invocation
    must have ended, so a crashed copy is retried as soon as it can be, not a fixed time later."""
    store = store or JobStore()
    job = store.get(job_id)
    if job is None or job.phase is not Phase.TRANSFERRING:
        return "skipped"  # already done, canceled or failed: a duplicate message
    logger.append_keys(job_id=job_id, provider=job.provider, tenant_id=job.tenant_id)
    key = output_key(job_id)

    existing = head(key)
    if existing is not None:
        stored = StoredObject(key, int(existing["ContentLength"]), sha256_of(key),
                              existing.get("ContentType") or "video/mp4")
        logger.info("output already stored; completing without a second copy")
        return _complete(job_id, stored, store)

    now = time.time()
    try:
        store.write(job_id, transitions.change(
            "transfer_started", values={"transfer_lease_until": int(now) + _lease_seconds(remaining_ms)},
            guard_value=int(now), at=at(now)))
    except ConditionFailed as exc:
        current = store.get(job_id)
        if current is None or current.phase is not Phase.TRANSFERRING:
            return "skipped"
        # Come back when that lease ends (its holder may have died), not at once: every
        # early receive would count towards the DLQ.
        raise TransferRetry("another transfer of this job holds the lease",
                            delay=max(1, int((current.transfer_lease_until or now) - now) + 1)) from exc

    try:
        stored = _copy(job.output_source_url or "", key, http_client)
    except NotVideo as exc:
        fail(job_id, exc.code, exc.message, store=store, event="transfer_failed")
        return "failed"
    except MotionRelayError as exc:
        if exc.status in (403, 404, 410, 413) or exc.code == "forbidden_url":
            fail(job_id, "output_unavailable", exc.message, store=store, event="transfer_failed")
            return "failed"
        _release_lease(store, job_id)
        raise TransferRetry(exc.message) from exc
    except Exception:
        _release_lease(store, job_id)
        raise
    count("BytesTransferred", job.provider, value=stored.size_bytes, unit="Bytes")
    return _complete(job_id, stored, store)


def hide_message(receipt_handle: str, delay: int) -> None:
    """Keep a retried transfer message invisible for `delay` seconds."""
    queues.hide(get_settings().transfer_queue_url, receipt_handle, delay, what="transfer")


def _lease_seconds(remaining_ms: Any) -> int:
    if remaining_ms is None:
        return TRANSFER_FUNCTION_TIMEOUT
    return max(1, int(remaining_ms() / 1000) + 1)


def _complete(job_id: str, stored: StoredObject, store: JobStore) -> str:
    output = {"key": stored.key, "size_bytes": stored.size_bytes, "sha256": stored.sha256,
              "content_type": stored.content_type}
    if complete(job_id, output, store=store):
        return "done"
    current = store.get(job_id)
    if current is not None and current.phase is Phase.CANCELED:
        delete(stored.key)  # canceled while copying: a canceled job keeps no output
    return "skipped"


def _release_lease(store: JobStore, job_id: str) -> None:
    try:
        store.write(job_id, transitions.change("transfer_released", at=at(time.time())))
    except ConditionFailed:
        pass


def _copy(url: str, key: str, http_client: Any) -> StoredObject:
    import httpx

    from motionrelay.infra.netguard import guarded_client, open_stream

    settings = get_settings()
    own_client = http_client is None
    http_client = http_client or guarded_client(allow_loopback=settings.allow_loopback,
                                                timeout=DOWNLOAD_TIMEOUT_SECONDS)
    try:
        with open_stream(http_client, url, allow_loopback=settings.allow_loopback) as response:
            if response.status_code != 200:
                raise MotionRelayError(f"The provider's output URL answered HTTP {response.status_code}.",
                                       code="output_unavailable", status=response.status_code)
            declared = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if declared and not declared.startswith(_ACCEPTED_DECLARED):
                raise NotVideo(f"The provider's output is '{declared}', not a video.")

            def content_type(first_bytes: bytes) -> str:
                actual = sniff(first_bytes)
                if actual not in VIDEO_TYPES:
                    raise NotVideo("The provider's output is not an MP4, MOV or MKV video.")
                return actual

            try:
                # Chunks as they arrive: stream_upload gathers them into parts (httpx's own
                # re-chunking to 1 MiB cost more CPU than the copy's sha256, bench/transfer.py).
                return stream_upload(key, response.iter_bytes(),
                                     content_type=content_type, max_bytes=settings.max_output_bytes)
            except EmptyContent as exc:  # final: the same URL gives the same nothing on a retry
                raise NotVideo("The provider returned an empty file.") from exc
            except httpx.HTTPError as exc:
                raise MotionRelayError(f"The download broke off ({type(exc).__name__}).",
                                       code="output_interrupted", status=502) from exc
    finally:
        if own_client:
            http_client.close()
