"""Secrets Manager, read through Powertools Parameters (its max_age cache is per process)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _provider() -> Any:
    from aws_lambda_powertools.utilities import parameters  # lazy: only when a secret is used

    from motionrelay.infra.aws import client

    return parameters.SecretsProvider(boto3_client=client("secretsmanager"))


def json_secret(name: str, max_age: int) -> dict[str, Any]:
    """The secret NAME as a JSON object ({} when empty), cached for MAX_AGE seconds."""
    return _provider().get(name, transform="json", max_age=max_age) or {}


def reset() -> None:
    """Forget the provider (tests switch endpoints between moto instances)."""
    _provider.cache_clear()
