"""Asking a provider to stop the task of a job we canceled (fal while queued, Replicate).

Best effort: the job is canceled on our side whatever the provider answers (apply() and the
transfer ignore a canceled job), so this only saves what the provider would charge for work
nobody collects. Providers without a cancel call (the resellers, Kling) are not asked.
"""

from __future__ import annotations

from typing import Any

from motionrelay.domain.job import Job
from motionrelay.infra.http_clients import provider_client
from motionrelay.observability import count, logger
from motionrelay.providers.base import ProviderError
from motionrelay.registry import get_adapter

CANCEL_TIMEOUT_SECONDS = 3.0


def cancel_at_provider(job: Job, *, http_client: Any = None) -> bool | None:
    """True when the provider took the cancel, False when it refused or failed, None when there
    was nothing to ask (no task yet, or a provider without a cancel call)."""
    import httpx

    if not job.provider or not job.provider_task_id:
        return None
    adapter = get_adapter(job.provider)
    build = getattr(adapter, "build_cancel", None)
    if build is None:
        return None
    own_client = http_client is None
    http_client = http_client or provider_client(CANCEL_TIMEOUT_SECONDS)
    try:
        taken = bool(adapter.parse_cancel(http_client.send(build(job.provider_task_id))))
    except (ProviderError, httpx.HTTPError) as exc:
        logger.warning("provider cancel failed", extra={"job_id": job.id, "provider": job.provider,
                                                        "error": str(exc)})
        return False
    finally:
        if own_client:
            http_client.close()
    count("ProviderCancels" if taken else "ProviderCancelsRefused", job.provider)
    logger.info("provider cancel " + ("taken" if taken else "refused (already running or done)"),
                extra={"job_id": job.id, "provider": job.provider})
    return taken
