"""`Idempotency-Key` on POST /v1/jobs, with Powertools Idempotency.

The record is keyed per tenant and key (one tenant's key never collides with another's) and
validated against a hash of the request body: the same key with a different body is a 409
`idempotency_conflict`; a replay while the first request is still running is a 409
`idempotency_in_progress`; a replay after it finished returns the same job, without a second
provider submit. The Lambda context is registered on every invocation so that a record left
`INPROGRESS` by a timed-out invocation expires with that invocation instead of blocking the
key for the whole record lifetime (the known Powertools pitfall).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from motionrelay.domain.errors import Conflict, InvalidRequest
from motionrelay.settings import get_settings

RECORD_SECONDS = 24 * 3600
MAX_KEY_CHARS = 255


@cache
def _config():
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(
        event_key_jmespath="[tenant_id, key]",
        payload_validation_jmespath="body_sha256",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=RECORD_SECONDS,
    )


def register_lambda_context(context: Any) -> None:
    """Call at the start of every invocation (cheap: no import of boto3)."""
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        _config().register_lambda_context(context)


@cache
def _create_once() -> Callable[..., dict]:
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer

    from motionrelay.infra.aws import client

    persistence = DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table,
                                           boto3_client=client("dynamodb"),
                                           static_pk_value="idempotency#create-job")

    @idempotent_function(data_keyword_argument="request", config=_config(), persistence_store=persistence)
    def create(request: dict, create_job: Callable[[], str]) -> dict:
        return {"job_id": create_job()}

    return create


def body_sha256(raw_body: str | bytes | None) -> str:
    """Hash of the body as JSON with sorted keys, so key order and spacing do not matter."""
    try:
        canonical = json.dumps(json.loads(raw_body or "null"), sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):  # not JSON (not UTF-8, too deep): the bytes as they are
        return hashlib.sha256(raw_body if isinstance(raw_body, bytes) else str(raw_body).encode()).hexdigest()
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_idempotently(tenant_id: str, key: str, raw_body: str | bytes | None,
                        create_job: Callable[[], str]) -> str:
    """Run `create_job` once per (tenant, key); returns the job id, new or replayed."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    if not key.strip() or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InvalidRequest(f"'Idempotency-Key' must be 1-{MAX_KEY_CHARS} printable characters.",
                             field="Idempotency-Key")
    request = {"tenant_id": tenant_id, "key": key, "body_sha256": body_sha256(raw_body)}
    try:
        return _create_once()(request=request, create_job=create_job)["job_id"]
    except IdempotencyValidationError as exc:
        raise Conflict("This Idempotency-Key was already used with a different request body.",
                       code="idempotency_conflict", field="Idempotency-Key") from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise Conflict("A request with this Idempotency-Key is still being processed; retry shortly.",
                       code="idempotency_in_progress", field="Idempotency-Key") from exc


def reset() -> None:
    _create_once.cache_clear()
    _config.cache_clear()
