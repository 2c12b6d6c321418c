"""Provider cooldowns shared by every function and invocation (LiteLLM-router style).

A provider that fails a submit with a retryable error (429, 5xx, maintenance, timeouts,
insufficient credits) is skipped for a while by every placement, so a job does not wait on
a provider that is down. The cooldown is one small item per provider in the jobs table;
its `until` timestamp decides (DynamoDB's TTL deletes expired items lazily, up to days
later, so the item's presence means nothing by itself). Consecutive failures double the
cooldown; a successful submit clears it.
"""

from __future__ import annotations

import time

from motionrelay.infra.aws import client
from motionrelay.settings import get_settings

BASE_SECONDS = 30.0
MAX_SECONDS = 600.0
_SK = "COOLDOWN"


def _key(provider: str) -> dict:
    return {"pk": {"S": f"COOLDOWN#{provider}"}, "sk": {"S": _SK}}


def read(providers: list[str]) -> dict[str, tuple[float, int]]:
    """`{provider: (until, failures)}` for the providers that have a cooldown item (expired
    or not), in one BatchGetItem."""
    if not providers:
        return {}
    table = get_settings().table_name
    response = client("dynamodb").batch_get_item(
        RequestItems={table: {"Keys": [_key(p) for p in dict.fromkeys(providers)], "ConsistentRead": True}}
    )
    found: dict[str, tuple[float, int]] = {}
    for item in response.get("Responses", {}).get(table, []):
        provider = item["pk"]["S"].split("#", 1)[1]
        found[provider] = (float(item["until"]["N"]), int(item.get("failures", {"N": "0"})["N"]))
    return found


def cooling(state: dict[str, tuple[float, int]], provider: str, now: float | None = None) -> float | None:
    """When `provider`'s cooldown ends, if it has not ended yet."""
    until = state.get(provider, (0.0, 0))[0]
    return until if until > (time.time() if now is None else now) else None


def trip(provider: str, failures_before: int, retry_after: float | None = None) -> float:
    """Start (or extend) a cooldown after a retryable failure; returns when it ends."""
    # A schedule like the polls: MOTIONRELAY_POLL_TIME_SCALE compresses it (the local stack).
    scale = get_settings().poll_time_scale
    seconds = min(BASE_SECONDS * 2 ** failures_before, MAX_SECONDS) * scale
    if retry_after:
        seconds = max(seconds, min(retry_after, MAX_SECONDS))
    until = time.time() + seconds
    client("dynamodb").update_item(
        TableName=get_settings().table_name, Key=_key(provider),
        UpdateExpression="SET #until = :until, expires_at = :expires ADD failures :one",
        ExpressionAttributeNames={"#until": "until"},
        ExpressionAttributeValues={":until": {"N": f"{until:.3f}"}, ":one": {"N": "1"},
                                   ":expires": {"N": str(int(until + 86400))}},
    )
    return until


def clear(provider: str) -> None:
    client("dynamodb").delete_item(TableName=get_settings().table_name, Key=_key(provider))
