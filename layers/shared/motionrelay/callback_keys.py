"""The keys some providers sign callbacks with and publish (fal's JWKS, Replicate's webhook
signing secret), fetched and cached here: adapters are sans-I/O, they build the request and
read the answer (`build_callback_keys_request` / `parse_callback_keys`).

Keys are cached per provider for KEYS_TTL_SECONDS. A callback no cached key verifies may mean
the provider rotated them: `refresh` fetches again, at most once per MIN_REFETCH_SECONDS, so a
stream of forged callbacks cannot turn into a stream of fetches. Fetches go through the SSRF
guard like every other outbound fetch (loopback only in the local stack).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from motionrelay.observability import logger
from motionrelay.providers.base import ProviderError

KEYS_TTL_SECONDS = 3600.0  # fal: cache the JWKS for at most 24 h; an hour picks up rotations sooner
MIN_REFETCH_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 3.0


class KeysUnavailable(Exception):
    """The provider's keys could not be fetched (network, its answer, the SSRF guard)."""


clock = time.monotonic  # module level: tests move it
_cache: dict[str, tuple[float, tuple[Any, ...]]] = {}
_last_fetch: dict[str, float] = {}
_lock = threading.Lock()


def keys_for(provider: str, adapter: Any, *, http_client: Any = None) -> tuple[Any, ...]:
    """The cached keys, fetched when there are none or they are older than the TTL."""
    cached = _cache.get(provider)
    if cached is not None and clock() - cached[0] < KEYS_TTL_SECONDS:
        return cached[1]
    return _fetch(provider, adapter, http_client)


def refresh(provider: str, adapter: Any, *, http_client: Any = None) -> tuple[Any, ...] | None:
    """Fetch again after a failed verification (rotated keys); None when the last fetch was
    less than MIN_REFETCH_SECONDS ago (the keys are as fresh as they get)."""
    last = _last_fetch.get(provider)
    if last is not None and clock() - last < MIN_REFETCH_SECONDS:
        return None
    return _fetch(provider, adapter, http_client)


def _fetch(provider: str, adapter: Any, http_client: Any) -> tuple[Any, ...]:
    import httpx

    from motionrelay.domain.errors import ForbiddenUrl, InputUnreachable
    from motionrelay.infra import netguard
    from motionrelay.settings import get_settings

    with _lock:
        allow_loopback = get_settings().allow_loopback
        request = adapter.build_callback_keys_request()
        own_client = http_client is None
        _last_fetch[provider] = clock()
        try:
            netguard.check_url(str(request.url), allow_loopback=allow_loopback)
            http_client = http_client or netguard.guarded_client(allow_loopback=allow_loopback,
                                                                 timeout=FETCH_TIMEOUT_SECONDS)
            keys = adapter.parse_callback_keys(http_client.send(request))
        except (ProviderError, httpx.HTTPError, ForbiddenUrl, InputUnreachable) as exc:
            logger.warning("callback keys could not be fetched",
                           extra={"provider": provider, "error": str(exc)})
            raise KeysUnavailable(str(exc)) from exc
        finally:
            if own_client and http_client is not None:
                http_client.close()
        _cache[provider] = (clock(), keys)
        logger.info("callback keys fetched", extra={"provider": provider, "keys": len(keys)})
        return keys


def reset() -> None:
    _cache.clear()
    _last_fetch.clear()
