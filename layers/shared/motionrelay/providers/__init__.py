"""Provider adapters, one module each, built lazily from settings.

Adapters hold their credentials, so they are rebuilt after SECRET_CACHE_SECONDS: a key
rotated in Secrets Manager is picked up by warm functions within that time.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from motionrelay.settings import SECRET_CACHE_SECONDS, get_settings, provider_secret

if TYPE_CHECKING:
    from motionrelay.providers.base import ProviderAdapter

ENABLED = ("kie",)
_adapters: dict[str, tuple[float, ProviderAdapter]] = {}
_lock = threading.Lock()


def _build(name: str) -> ProviderAdapter:
    base_url = get_settings().provider_base_urls.get(name, "")
    if name == "kie":
        from motionrelay.providers.kie import KieAdapter

        return KieAdapter(
            api_key=provider_secret("kie"),
            base_url=base_url,
            webhook_hmac_key=provider_secret("kie", "WEBHOOK_HMAC_KEY"),
        )
    raise KeyError(f"unknown provider {name!r}")


def get_adapter(name: str) -> ProviderAdapter:
    now = time.monotonic()
    cached = _adapters.get(name)
    if cached and now - cached[0] < SECRET_CACHE_SECONDS:
        return cached[1]
    with _lock:
        adapter = _build(name)
        _adapters[name] = (now, adapter)
        return adapter


def known_provider(name: str) -> bool:
    return name in ENABLED


def reset_adapters() -> None:
    _adapters.clear()
