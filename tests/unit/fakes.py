"""An in-memory jobs table with JobStore's interface for the job and webhook-secret paths: the
same conditions (domain/transitions.allows) and the same writes (transitions.apply), with no
moto and no DynamoDB JSON. tests/unit/test_fakes.py runs one script of writes through both
this and the real JobStore on moto and requires the same results, so the fake cannot drift
into being kinder than the table."""

from __future__ import annotations

import copy
import threading
from typing import Any

from motionrelay.domain import transitions
from motionrelay.domain.job import Job, iso, utc_now
from motionrelay.domain.transitions import Change
from motionrelay.infra.jobs_table import OWED_PREFIX, ConditionFailed, JobStore


class MemoryJobStore:
    def __init__(self, shards: int = 4) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.writes = 0
        self._lock = threading.Lock()  # a conditional write is atomic, as in DynamoDB
        self._shards = shards

    # The key layout is the real table's (pure helpers, no I/O).
    due_shard = JobStore.due_shard
    poll_at = JobStore.poll_at
    owed_at = JobStore.owed_at

    @property
    def shards(self) -> int:
        return self._shards

    def create(self, change: Change) -> Job:
        job_id = change.values["id"]
        with self._lock:
            if job_id in self.items:
                raise ConditionFailed(job_id)
            self.items[job_id] = {**change.sets(), **self.poll_at(job_id, float(change.due_at or 0))}
            self.writes += 1
            return Job.from_item(copy.deepcopy(self.items[job_id]))

    def get(self, job_id: str, consistent: bool = True) -> Job | None:
        item = self.items.get(job_id)
        return Job.from_item(copy.deepcopy(item)) if item else None

    def write(self, job_id: str, change: Change) -> Job | None:
        event = change.event
        with self._lock:
            item = self.items.get(job_id)
            if not transitions.allows(change, item):
                raise ConditionFailed(job_id)
            shard = self.due_shard(job_id).split("#", 1)[1]
            new = transitions.apply(change, item, shard=shard)
            if event.touches and "updated_at" not in change.sets():
                new["updated_at"] = iso(utc_now())
            self.items[job_id] = new
            self.writes += 1
            lean = not event.touches and event.to is None
            return None if lean else Job.from_item(copy.deepcopy(new))

    def notification_state(self, job_id: str) -> tuple[set[str], float | None]:
        item = self.items.get(job_id) or {}
        lease = item.get("notify_lease_until")
        return set(item.get("notified_ids") or ()), float(lease) if lease is not None else None

    def owed(self) -> list[str]:
        return [job_id for job_id, item in self.items.items()
                if str(item.get("due_shard", "")).startswith(OWED_PREFIX)]

    # --- webhook secrets -----------------------------------------------------------------
    def webhook_secret(self, tenant_id: str) -> dict[str, Any] | None:
        item = self.secrets.get(tenant_id)
        return dict(item) if item else None

    def create_webhook_secret(self, tenant_id: str, secret: str, created_at: str) -> bool:
        with self._lock:
            if tenant_id in self.secrets:
                return False
            self.secrets[tenant_id] = {"secret": secret, "secret_created_at": created_at}
            return True

    def replace_webhook_secret(self, tenant_id: str, *, old: str, new: str, created_at: str,
                               previous_until: int) -> bool:
        with self._lock:
            current = self.secrets.get(tenant_id)
            if current is None or current["secret"] != old:
                return False
            self.secrets[tenant_id] = {"secret": new, "secret_created_at": created_at, "previous_secret": old,
                                       "previous_until": previous_until}
            return True
