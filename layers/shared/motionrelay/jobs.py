"""Reading and managing a tenant's jobs: get, list, cancel. Another tenant's job is
indistinguishable from a missing one on every route."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from motionrelay.apikeys import Principal
from motionrelay.domain import transitions
from motionrelay.domain.errors import Conflict, InvalidRequest, NotFound
from motionrelay.domain.job import Job, Phase
from motionrelay.infra.jobs_table import JobStore
from motionrelay.job_view import STAGES, job_resource
from motionrelay.lifecycle import at, commit, owed_at
from motionrelay.observability import logger

MAX_PAGE = 100
DEFAULT_PAGE = 20
# Public status -> the internal phases it stands for (derived, so the two cannot drift).
_STATUS_PHASES: dict[str, tuple[Phase, ...]] = {}
for _phase in Phase:
    _STATUS_PHASES.setdefault(_phase.public_status, ())
    _STATUS_PHASES[_phase.public_status] += (_phase,)
STATUSES = tuple(_STATUS_PHASES)  # the public statuses, in lifecycle order
__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "STAGES", "STATUSES", "cancel_job", "get_job", "job_resource",
           "list_jobs"]



def get_job(principal: Principal, job_id: str, store: JobStore | None = None) -> Job:
    job = (store or JobStore()).get(job_id)
    if job is None or job.tenant_id != principal.tenant_id:
        raise NotFound(f"No job with id '{job_id}'.")
    return job


def cancel_job(principal: Principal, job_id: str, store: JobStore | None = None) -> Job:
    """Cancel at once: polling stops (the job leaves the due index) and any later provider
    result is ignored, since apply() and the transfer only start from active phases."""
    store = store or JobStore()
    job = get_job(principal, job_id, store)
    now = time.time()
    canceled = commit(store, job_id, transitions.change("canceled", due_at=owed_at(now), at=at(now)))
    if canceled is None:
        current = store.get(job_id) or job
        raise Conflict(f"The job is already {current.status}; only queued or running jobs can be canceled.",
                       code="job_finished")
    logger.info("job canceled", extra={"job_id": job_id})
    from motionrelay.provider_cancel import cancel_at_provider

    cancel_at_provider(canceled)  # best effort: fal (while queued) and Replicate stop the task
    return canceled


def list_jobs(principal: Principal, *, status: str | None, limit: str | None, cursor: str | None,
              store: JobStore | None = None) -> dict[str, Any]:
    phases: tuple[Phase, ...] = ()
    if status:
        if status not in _STATUS_PHASES:
            raise InvalidRequest(f"'status' must be one of: {', '.join(_STATUS_PHASES)}.", field="status")
        phases = _STATUS_PHASES[status]
    page_size = DEFAULT_PAGE
    if limit is not None:
        # isdigit() alone also takes digits int() refuses ("²": a 500) or reads (Arabic-Indic).
        if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= MAX_PAGE:
            raise InvalidRequest(f"'limit' must be a whole number from 1 to {MAX_PAGE}.", field="limit")
        page_size = int(limit)
    start_key = _decode_cursor(cursor, principal) if cursor else None
    jobs, next_key = (store or JobStore()).tenant_jobs(principal.tenant_id, limit=page_size,
                                                       start_key=start_key, phases=phases)
    return {"jobs": [job_resource(j) for j in jobs],
            "next_cursor": _encode_cursor(next_key) if next_key else None}


def _encode_cursor(key: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, principal: Principal) -> dict:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        valid = (isinstance(key, dict) and set(key) == {"pk", "sk", "tenant_id", "created_at"}
                 and all(isinstance(v, dict) and isinstance(v.get("S"), str) for v in key.values()))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        valid = False
    # A cursor only resumes the caller's own listing: another tenant's cursor is just invalid.
    if not valid or key["tenant_id"]["S"] != principal.tenant_id:
        raise InvalidRequest("'cursor' is not a cursor returned by this listing.", field="cursor")
    return key
