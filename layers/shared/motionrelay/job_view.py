"""The public job resource, as the API returns it and notifications carry it. Its own module:
the notifier renders it too, and must not import the job use cases (which import the
lifecycle, which queues notifications)."""

from __future__ import annotations

from typing import Any

from motionrelay.domain.job import Job, Phase
from motionrelay.settings import get_settings

# Where a job is, finer than its status: the public `queued` is either still being placed or
# waiting in the provider's queue; `running` is either running at the provider or having its
# video copied into the bucket. Terminal jobs' stage is their status.
STAGES: dict[Phase, str] = {
    Phase.PENDING: "placing",
    Phase.QUEUED: "provider_queued",
    Phase.RUNNING: "provider_running",
    Phase.TRANSFERRING: "transferring",
    **{p: p.public_status for p in Phase if p.terminal},
}


def job_resource(job: Job) -> dict[str, Any]:
    """The public job resource, plus what a client needs to show honest progress: the `stage`,
    whether the provider reports progress at all, and how long it typically runs."""
    from motionrelay import catalog
    from motionrelay.infra.blobs import presign_get

    if job.phase is Phase.SUCCEEDED and job.output:
        url, expires_at = presign_get(job.output["key"], get_settings().output_url_ttl_seconds)
        resource = job.resource(url, expires_at)
    else:
        resource = job.resource()
    resource["stage"] = STAGES[job.phase]
    resource["provider_reports_progress"] = catalog.reports_progress(job.provider)
    resource["typical_run_seconds"] = catalog.typical_run_seconds(job.provider)
    return resource
