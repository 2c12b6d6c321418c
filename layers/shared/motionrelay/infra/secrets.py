"""Secrets Manager, read through Powertools Parameters (its max_age cache is per process)."""

from __future__ import annotations

from typing import Any

from motionrelay.infra.aws import client

_current: dict[str, Any] = {}


def _provider() -> Any:
    """One SecretsProvider per Secrets Manager client: a new client (tests switch endpoints with
    aws.reset_clients) gets a new provider, and a new cache with it."""
    sm = client("secretsmanager")
    if _current.get("client") is not sm:
        from aws_lambda_powertools.utilities import parameters  # lazy: only when a secret is used

        _current.update(client=sm, provider=parameters.SecretsProvider(boto3_client=sm))
    return _current["provider"]


def json_secret(name: str, max_age: int) -> dict[str, Any]:
    """The secret NAME as a JSON object ({} when empty), cached for MAX_AGE seconds."""
    return _provider().get(name, transform="json", max_age=max_age) or {}
