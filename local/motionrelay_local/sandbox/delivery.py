"""Callback (webhook) delivery with retries, recording every attempt for tests.

Providers build the body and headers; this module sends them, records what went over
the wire in `Sandbox.callbacks`, and retries on anything but the accepted status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from .provider import SandboxContext

log = logging.getLogger(__name__)


def deliver_callback(
    ctx: SandboxContext,
    *,
    provider: str,
    task_id: str,
    url: str,
    body: bytes,
    headers: Callable[[], dict[str, str]],
    timeout: float,
    retry_delays: Sequence[float],
    accepted: Callable[[int], bool] = lambda status: status == 200,
) -> bool:
    """POST `body` to `url` until `accepted(status)`; one try plus one per delay (Kie counts
    only 200 as delivered, Novita any 2xx).

    `headers` is called per attempt so time-based signatures are fresh on each retry.
    Returns whether the receiver accepted it.
    """
    attempts = 1 + len(retry_delays)
    # trust_env=False: callback receivers in the local stack are on loopback
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        for attempt in range(1, attempts + 1):
            status, error, sent = _attempt(client, url, body, headers())
            ctx.record_callback({
                "provider": provider,
                "task_id": task_id,
                "url": url,
                "headers": sent,
                "body": body,
                "status": status,
                "attempt": attempt,
                "error": error,
                "sent_at": time.time(),
            })
            if status is not None and accepted(status):
                return True
            log.info("callback %s attempt %d -> %s", task_id, attempt, status or error)
            if attempt < attempts and ctx.stopping.wait(retry_delays[attempt - 1]):
                return False
    return False


def _attempt(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int | None, str | None, dict[str, str]]:
    try:
        request = client.build_request("POST", url, content=body, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # malformed URL
        return None, f"{type(exc).__name__}: {exc}", dict(headers)
    sent = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.raw}  # as sent
    try:
        resp = client.send(request)
        resp.read()
        return resp.status_code, None, sent
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}", sent
    except Exception as exc:  # noqa: BLE001 - any transport failure just counts as a failed try
        return None, f"{type(exc).__name__}: {exc}", sent


def json_headers(extra: dict[str, Any] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", **{k: str(v) for k, v in (extra or {}).items()}}
