"""Provider cooldowns shared by every function and invocation (LiteLLM-router style): the rules.

A provider that fails a submit with a retryable error (429, 5xx, maintenance, timeouts,
insufficient credits) is skipped for a while by every placement, so a job does not wait on
a provider that is down. Consecutive failures double the cooldown; a successful submit
clears it. The state is one small item per provider in the jobs table
(`JobStore.cooldowns/trip_cooldown/clear_cooldown`); its `until` decides (DynamoDB's TTL
deletes expired items lazily, up to days later, so an item's presence means nothing).
"""

from __future__ import annotations

BASE_SECONDS = 30.0
MAX_SECONDS = 600.0


def cooling(state: dict[str, tuple[float, int]], provider: str, now: float) -> float | None:
    """When `provider`'s cooldown ends, if it has not ended by `now`."""
    until = state.get(provider, (0.0, 0))[0]
    return until if until > now else None


def ends(failures_before: int, retry_after: float | None, now: float, *, scale: float = 1.0) -> float:
    """When a cooldown started at `now` ends. `scale` compresses it like the polls
    (MOTIONRELAY_POLL_TIME_SCALE, the local stack); a provider's Retry-After is honoured."""
    seconds = min(BASE_SECONDS * 2 ** failures_before, MAX_SECONDS) * scale
    if retry_after:
        seconds = max(seconds, min(retry_after, MAX_SECONDS))
    return now + seconds
