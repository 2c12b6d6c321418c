"""The job model and its state machine.

Internally a job moves through phases ranked so that a write can only move it forward:

    pending (accepted, not placed yet) -> queued (provider queued it) -> running
    -> transferring (provider finished, copying the video) -> succeeded | failed | canceled

Publicly the API shows `queued` for pending/queued and `running` for running/transferring.
Terminal phases never change again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    TRANSFERRING = "transferring"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def public_status(self) -> str:
        return _PUBLIC_STATUS[self]


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED})
ACTIVE = tuple(p for p in Phase if p not in TERMINAL)
_PUBLIC_STATUS = {
    Phase.PENDING: "queued",
    Phase.QUEUED: "queued",
    Phase.RUNNING: "running",
    Phase.TRANSFERRING: "running",
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
    Phase.CANCELED: "canceled",
}


class ProviderState(StrEnum):
    """A provider's status, normalised by its adapter."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class ProviderStatus:
    state: ProviderState
    progress: int | None = None
    output_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    eta_seconds: float | None = None
    cost: dict[str, Any] | None = None


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Job:
    """A job as stored. Only the fields the code reasons about are typed; the rest ride along."""

    id: str
    tenant_id: str
    phase: Phase
    request: dict[str, Any]
    created_at: str
    updated_at: str
    deadline_at: int
    provider: str | None = None
    provider_task_id: str | None = None
    progress: int | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    output: dict[str, Any] | None = None
    output_source_url: str | None = None
    error: dict[str, str] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    completed_at: str | None = None
    callback_base: str | None = None
    callback_token_hash: str | None = None
    cost: dict[str, Any] | None = None
    poll_count: int = 0
    # Providers that can serve this job, in routing order; placement fails over along it.
    candidates: list[str] = field(default_factory=list)
    # Placement: the lease holder and until when; the submit in flight (provider, token hash,
    # at) while its answer is not recorded; set when a placer died or timed out after sending.
    placing_by: str | None = None
    placing_until: float | None = None
    submitting: dict[str, Any] | None = None
    ambiguous_hold: bool = False
    orphaned_tasks: list[dict[str, Any]] = field(default_factory=list)
    poll_errors: int = 0
    transfer_lease_until: float | None = None
    body_sha256: str | None = None  # of the request body, for an Idempotency-Key's later retries

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        def plain(value: Any) -> Any:
            # DynamoDB returns numbers as Decimal; the job exposes ints and floats.
            from decimal import Decimal

            if isinstance(value, Decimal):
                return int(value) if value == value.to_integral_value() else float(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        data = plain(item)
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["phase"] = Phase(kwargs["phase"])
        return cls(**kwargs)

    @property
    def status(self) -> str:
        return self.phase.public_status

    def resource(self, output_url: str | None = None, output_expires_at: str | None = None) -> dict:
        """The public job resource (architecture.md: job resource). No secrets, no base64."""
        output = None
        if self.output and self.phase == Phase.SUCCEEDED:
            output = {
                "url": output_url,
                "expires_at": output_expires_at,
                "size_bytes": self.output.get("size_bytes"),
                "sha256": self.output.get("sha256"),
                "content_type": self.output.get("content_type"),
            }
        return {
            "id": self.id,
            "status": self.status,
            "provider": self.provider,
            "provider_task_id": self.provider_task_id,
            "progress": self.progress,
            "request": self.request,
            "output": output,
            "error": self.error,
            "attempts": self.attempts,
            "metadata": self.metadata,
            "cost": self.cost,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
        }
