"""Configuration read from the environment (names fixed in docs/architecture.md).

Provider credentials come from `MOTIONRELAY_<P>_API_KEY` when set (local stack, tests) and
otherwise from one Secrets Manager JSON secret (`MOTIONRELAY_PROVIDER_SECRET`) whose keys
are the same variable names, read through Powertools Parameters with a short cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

PROVIDERS = ("kie", "novita", "aimlapi", "pixazo", "vibedream", "fal", "replicate", "kling")
SECRET_CACHE_SECONDS = 300
DEFAULT_POLL_CONCURRENCY = 10


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _flag(name: str) -> bool:
    return _env(name).lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    table_name: str
    idempotency_table: str
    bucket_name: str
    transfer_queue_url: str
    public_url: str
    routing: tuple[str, ...]
    provider_secret_name: str
    local_mode: bool
    job_deadline_seconds: int
    due_shards: int
    output_url_ttl_seconds: int
    input_url_ttl_seconds: int
    max_output_bytes: int
    provider_base_urls: dict[str, str] = field(default_factory=dict)
    # Client notifications (notify.py); empty = not configured, nothing is enqueued.
    notify_queue_url: str = ""
    # The tick's one-message-per-shard fan-out (poller.fan_out); empty = not configured.
    poll_shard_queue_url: str = ""
    poll_concurrency: dict[str, int] = field(default_factory=dict)
    poll_time_scale: float = 1.0
    # After an ambiguous submit (sent, no definite answer): place with the next provider
    # (default) or keep the job on the first provider's deadline.
    failover_on_ambiguous: bool = True

    def poll_limit(self, provider: str) -> int:
        """How many status requests the poller may have in flight to one provider."""
        limits = self.poll_concurrency
        return limits.get(provider) or limits.get("*") or DEFAULT_POLL_CONCURRENCY

    @property
    def allow_loopback(self) -> bool:
        """Loopback/plain-http fetches are allowed only in the local stack, explicitly."""
        return self.local_mode


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    routing = tuple(p.strip() for p in _env("MOTIONRELAY_ROUTING", "kie").split(",") if p.strip())
    unknown = [p for p in routing if p not in PROVIDERS]
    if unknown:
        raise ValueError(f"MOTIONRELAY_ROUTING names unknown providers: {', '.join(unknown)}")
    return Settings(
        table_name=_env("MOTIONRELAY_TABLE", "motionrelay-jobs"),
        idempotency_table=_env("MOTIONRELAY_IDEMPOTENCY_TABLE")
        or f"{_env('MOTIONRELAY_TABLE', 'motionrelay-jobs')}-idempotency",
        bucket_name=_env("MOTIONRELAY_BUCKET", "motionrelay-media"),
        transfer_queue_url=_env("MOTIONRELAY_TRANSFER_QUEUE_URL"),
        public_url=_env("MOTIONRELAY_PUBLIC_URL").rstrip("/"),
        routing=routing,
        provider_secret_name=_env("MOTIONRELAY_PROVIDER_SECRET"),
        local_mode=_flag("MOTIONRELAY_LOCAL"),
        job_deadline_seconds=int(_env("MOTIONRELAY_JOB_DEADLINE_SECONDS", "1800")),
        due_shards=max(1, int(_env("MOTIONRELAY_DUE_SHARDS", "4"))),
        output_url_ttl_seconds=int(_env("MOTIONRELAY_OUTPUT_URL_TTL_SECONDS", "3600")),
        # Inputs must stay readable through the provider's queue and run (hours, not minutes).
        input_url_ttl_seconds=int(_env("MOTIONRELAY_INPUT_URL_TTL_SECONDS", str(12 * 3600))),
        max_output_bytes=int(_env("MOTIONRELAY_MAX_OUTPUT_BYTES", str(2 * 1024**3))),
        poll_concurrency=_poll_concurrency(_env("MOTIONRELAY_POLL_CONCURRENCY")),
        poll_time_scale=float(_env("MOTIONRELAY_POLL_TIME_SCALE", "1") or 1),
        provider_base_urls={
            p: _env(f"MOTIONRELAY_{p.upper()}_BASE_URL").rstrip("/") for p in PROVIDERS
        },
        notify_queue_url=_env("MOTIONRELAY_NOTIFY_QUEUE_URL"),
        poll_shard_queue_url=_env("MOTIONRELAY_POLL_SHARD_QUEUE_URL"),
        failover_on_ambiguous=_env("MOTIONRELAY_FAILOVER_ON_AMBIGUOUS", "true").lower()
        not in {"0", "false", "no", "off"},
    )


def _poll_concurrency(value: str) -> dict[str, int]:
    """`20` (every provider) or `kie=20,novita=5,*=10`."""
    limits: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, number = part.rpartition("=")
        name = name.strip() or "*"
        if name != "*" and name not in PROVIDERS:
            raise ValueError(f"MOTIONRELAY_POLL_CONCURRENCY names an unknown provider: {name}")
        if not number.strip().isdigit() or int(number) < 1:
            raise ValueError(f"MOTIONRELAY_POLL_CONCURRENCY: {part!r} is not a positive integer")
        limits[name] = int(number)
    return limits


def reset_settings() -> None:
    """For tests and the local stack, which change the environment at run time."""
    get_settings.cache_clear()
