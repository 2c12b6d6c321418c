"""Signed notifications to the client's `webhook_url` when a job reaches a terminal state.

Exactly one logical notification per job:
- `enqueue()` is called only by the code path whose conditional write made the terminal
  transition (`lifecycle.fail`, `lifecycle.complete`, `jobs.cancel_job`); a duplicated or
  late event loses that write and enqueues nothing. Terminal states never change, so the
  notification's `webhook-id` (job id + terminal status) is stable across every retry.
- The notifier is idempotent: before POSTing it takes a short lease on the job (a second
  copy of the SQS message waits instead of POSTing concurrently), and after a 2xx it adds
  the webhook-id to the job's `notified_ids`; a copy arriving later sees it and stops.
  Left at-least-once: a process dying between the receiver's 2xx and that write. The
  receiver then gets the same webhook-id twice, which is what the id is for.
- An outbox closes the window between the terminal write and `enqueue()`: the terminal
  write itself puts the job under an `owed#<n>` partition of the due index (`store.owed_at`),
  `settle()` queues the notification and then clears it, and the poller sweeps any job
  still owed a minute later (its writer died, or SQS failed: `NotificationsEnqueueFailed`).
  A sweep can queue a second copy of a notification that was queued: the notifier's
  dedupe by webhook-id is what makes that harmless.

Delivery (`deliver`): the job resource as GET /v1/jobs/{id} shows it (a fresh presigned
output URL), in the Standard Webhooks envelope `{"type": "job.<status>", "timestamp",
"data"}`, signed with the tenant's secret(s) (webhook_secrets.py), POSTed through the SSRF
guard with short timeouts and without following redirects (a 3xx is a failure: the signed
body never goes to a host nobody checked). Only a 2xx counts. On failure the message is
hidden for the next backoff step (resources.NOTIFY_BACKOFF_SECONDS, +-20 % jitter) and
reported as a batch item failure; after NOTIFY_MAX_RECEIVES receives SQS moves it to the
DLQ. A URL the guard refuses (non-public address, not https) is given up at once.
"""

from __future__ import annotations

import json
import random
import time
from typing import TYPE_CHECKING, Any

from motionrelay.domain import transitions
from motionrelay.domain.errors import ForbiddenUrl, InputUnreachable
from motionrelay.infra import queues
from motionrelay.infra.jobs_table import ConditionFailed, JobStore
from motionrelay.infra.resources import NOTIFIER_FUNCTION_TIMEOUT, NOTIFY_BACKOFF_SECONDS, NOTIFY_MAX_RECEIVES
from motionrelay.job_view import job_resource
from motionrelay.observability import count, logger
from motionrelay.settings import get_settings

if TYPE_CHECKING:
    import httpx

    from motionrelay.domain.job import Job

SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
JITTER = 0.2
CONNECT_TIMEOUT_SECONDS = 5.0
POST_TIMEOUT_SECONDS = 10.0
# No delivery can outlive its function, so a lease of the function's timeout never expires
# under a POST still in flight.
LEASE_SECONDS = NOTIFIER_FUNCTION_TIMEOUT
DELIVERED = "notified_ids"  # string set on the job item
LEASE = "notify_lease_until"


class NotifyRetry(Exception):
    """This attempt failed; the message is retried after `delay` seconds (0: to the DLQ)."""

    def __init__(self, reason: str, delay: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def event_type(job: Job) -> str:
    return f"job.{job.status}"


def webhook_id(job_id: str, status: str) -> str:
    """Stable for one notification across all its retries; terminal states never change."""
    return f"msg_{job_id}_{status}"


def retry_delay(receive_count: int, rand: float | None = None) -> int:
    """Seconds until the next attempt after failed receive number `receive_count` (1-based);
    0 once the schedule is used up (the next receive moves the message to the DLQ)."""
    if receive_count >= NOTIFY_MAX_RECEIVES:
        return 0
    base = NOTIFY_BACKOFF_SECONDS[max(1, receive_count) - 1]
    factor = 1 - JITTER + 2 * JITTER * (random.random() if rand is None else rand)
    return max(1, min(SQS_MAX_VISIBILITY_SECONDS, round(base * factor)))


# ------------------------------------------------------------------------------ enqueue


def settle(job: Job, *, store: Any = None) -> bool:
    """The outbox step after a terminal write (which left the job owing its notification):
    queue it, then take the job out of the outbox. If queueing fails the job stays owed and
    the poller's sweep queues it later; the notifier's dedupe by webhook-id makes a second
    copy harmless. Never raises."""
    queued = enqueue(job)
    if not queued and _wanted(job):
        return False  # stays in the outbox
    try:
        (store or JobStore()).write(job.id, transitions.change("notification_queued"))
    except ConditionFailed:
        pass  # not owed (any more): someone else settled it
    except Exception:  # noqa: BLE001 - the sweep finds it again; the notification is already queued
        logger.warning("could not clear the job's owed notification", extra={"job_id": job.id}, exc_info=True)
    return queued


def _wanted(job: Job) -> bool:
    return bool((job.request or {}).get("webhook_url")) and job.phase.terminal and bool(
        get_settings().notify_queue_url)


def enqueue(job: Job) -> bool:
    """Queue the notification of a job that just became terminal (called only by the writer
    that made the transition). Never raises: the state change stands whatever happens here."""
    if not (job.request or {}).get("webhook_url") or not job.phase.terminal:
        return False
    queue_url = get_settings().notify_queue_url
    if not queue_url:
        logger.warning("notification not queued: MOTIONRELAY_NOTIFY_QUEUE_URL is not set",
                       extra={"job_id": job.id})
        return False
    body = {"job_id": job.id, "webhook_id": webhook_id(job.id, job.status), "type": event_type(job)}
    try:
        queues.enqueue_notification(queue_url, body)
    except Exception:  # noqa: BLE001 - boto3 already retried; failing here would not undo the write
        logger.exception("notification could not be queued", extra={"job_id": job.id})
        count("NotificationsEnqueueFailed", job.provider)
        return False
    logger.info("notification queued", extra={"job_id": job.id, "webhook_id": body["webhook_id"]})
    return True


# ------------------------------------------------------------------------------ delivery


def handle_message(body: str, *, receive_count: int, receipt_handle: str,
                   http_client: httpx.Client | None = None, remaining_ms: Any = None,
                   store: JobStore | None = None) -> str:
    """One SQS message. Returns the outcome; raises NotifyRetry (after hiding the message for
    the backoff step) so the batch reports the item as failed."""
    try:
        message = json.loads(body)
        job_id, msg_id = str(message["job_id"]), str(message["webhook_id"])
    except (ValueError, KeyError, TypeError):
        logger.error("malformed notification message dropped")
        return "skipped"
    try:
        return deliver(job_id, msg_id, attempt=receive_count, http_client=http_client,
                       remaining_ms=remaining_ms, store=store)
    except NotifyRetry as exc:
        _hide(receipt_handle, exc.delay)
        raise


def deliver(job_id: str, msg_id: str, *, attempt: int = 1, http_client: httpx.Client | None = None,
            remaining_ms: Any = None, store: JobStore | None = None) -> str:
    """Deliver one notification: 'delivered', 'duplicate' (already delivered), 'skipped'
    (nothing to notify) or 'refused' (the URL is not allowed: given up). Raises NotifyRetry."""
    logger.remove_keys(["job_id", "tenant_id", "provider"])  # left by the batch's previous record
    store = store or JobStore()
    job = store.get(job_id)
    url = (job.request or {}).get("webhook_url") if job else None
    if job is None or not url or not job.phase.terminal or msg_id != webhook_id(job.id, job.status):
        logger.warning("notification skipped: nothing to notify", extra={"job_id": job_id})
        return "skipped"
    logger.append_keys(job_id=job.id, tenant_id=job.tenant_id, provider=job.provider)
    host = _host(url)  # the URL may carry the client's own token: only the host is logged

    # The lease ends when this invocation must have ended: a delivery that died with it is
    # retried as soon as it can be.
    lease = LEASE_SECONDS if remaining_ms is None else max(1, int(remaining_ms() / 1000) + 1)
    claim, lease_left = _claim(job.id, msg_id, lease, store=store)
    if claim == "delivered":
        logger.info("notification already delivered", extra={"webhook_id": msg_id})
        return "duplicate"
    if claim == "busy":
        # Come back when that delivery's lease ends (it may have died), not a backoff step later.
        logger.info("another delivery of this notification is in flight", extra={"webhook_id": msg_id})
        raise NotifyRetry("in flight elsewhere", max(1, lease_left))

    try:
        status = _post(job, url, msg_id, http_client, store)
    except ForbiddenUrl as exc:
        _release(job.id, store=store)
        count("NotificationsFailed", job.provider)
        logger.warning("notification refused by the SSRF guard; not retried",
                       extra={"webhook_id": msg_id, "host": host, "reason": exc.message})
        return "refused"
    except NotifyRetry as exc:
        _release(job.id, store=store)
        exc.delay = retry_delay(attempt)
        final = attempt >= NOTIFY_MAX_RECEIVES
        count("NotificationsFailed" if final else "NotificationAttemptsFailed", job.provider)
        logger.warning("notification attempt failed" + ("; giving up (to the DLQ)" if final else ""),
                       extra={"webhook_id": msg_id, "host": host, "reason": exc.reason, "attempt": attempt,
                              "retry_in_seconds": exc.delay})
        raise
    _mark_delivered(job.id, msg_id, store=store)
    count("NotificationsDelivered", job.provider)
    logger.info("notification delivered", extra={"webhook_id": msg_id, "host": host, "status": status,
                                                 "attempt": attempt})
    return "delivered"


def build(job: Job, msg_id: str, timestamp: int,
          store: JobStore | None = None) -> tuple[bytes, dict[str, str]]:
    """The signed request: body bytes and Standard Webhooks headers."""
    from motionrelay import webhook_secrets

    payload = {"type": event_type(job), "timestamp": job.completed_at or job.updated_at,
               "data": job_resource(job)}
    body = json.dumps(payload, separators=(",", ":"))
    signing = webhook_secrets.get_or_create(job.tenant_id, store).signing_secrets(timestamp)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_secrets.sign(signing, msg_id, timestamp, body),
    }
    return body.encode(), headers


def _post(job: Job, url: str, msg_id: str, http_client: httpx.Client | None, store: JobStore) -> int:
    import httpx

    from motionrelay.infra import netguard

    allow_loopback = get_settings().allow_loopback
    target = netguard.check_url(url, allow_loopback=allow_loopback, field="webhook_url")
    body, headers = build(job, msg_id, int(time.time()), store)
    http = http_client or netguard.guarded_client(allow_loopback=allow_loopback)
    if http_client is None:
        http.timeout = httpx.Timeout(POST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    try:
        # Streamed and closed unread: only the status matters, whatever the receiver sends back.
        with http.stream("POST", target, content=body, headers=headers) as response:
            status = response.status_code
    except InputUnreachable as exc:  # name did not resolve
        raise NotifyRetry(exc.message) from exc
    except httpx.TimeoutException as exc:
        raise NotifyRetry("the receiver did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise NotifyRetry(f"request failed ({type(exc).__name__})") from exc
    finally:
        if http_client is None:
            http.close()
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        raise NotifyRetry(f"HTTP {status}: redirects are not followed")
    raise NotifyRetry(f"HTTP {status}")


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _hide(receipt_handle: str, delay: int) -> None:
    queues.hide(get_settings().notify_queue_url, receipt_handle, delay, what="notification")


# ------------------------------------------------------------------------------ job item
# Bookkeeping on the terminal job (domain/transitions.py: notification_*); it does not touch
# `updated_at`: the job did not change.


def _claim(job_id: str, msg_id: str, lease_seconds: int = LEASE_SECONDS, *,
           store: JobStore | None = None) -> tuple[str, int]:
    """('claimed' | 'delivered' (already done) | 'busy' (another delivery holds the lease),
    seconds that lease has left)."""
    store = store or JobStore()
    now = int(time.time())
    try:
        store.write(job_id, transitions.change("notification_claimed", values={LEASE: now + lease_seconds},
                                               guard_value=(msg_id, now)))
        return "claimed", lease_seconds
    except ConditionFailed:
        pass
    delivered, lease_until = store.notification_state(job_id)
    left = int((lease_until if lease_until is not None else now) - now) + 1
    return ("delivered" if msg_id in delivered else "busy"), left


def _mark_delivered(job_id: str, msg_id: str, *, store: JobStore | None = None) -> None:
    try:
        (store or JobStore()).write(job_id, transitions.change("notification_delivered",
                                                               add={DELIVERED: [msg_id]}))
    except ConditionFailed:
        pass  # the job item is gone: nothing left to protect from a second delivery


def _release(job_id: str, *, store: JobStore | None = None) -> None:
    try:
        (store or JobStore()).write(job_id, transitions.change("notification_released"))
    except Exception:  # noqa: BLE001 - the lease expires by itself
        logger.warning("could not release a notification lease", exc_info=True)


def delivered_ids(job_id: str, *, store: JobStore | None = None) -> set[str]:
    """The webhook-ids delivered for a job (tests, support)."""
    return (store or JobStore()).notification_state(job_id)[0]
