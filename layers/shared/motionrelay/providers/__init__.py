"""Provider adapters, one module each, built lazily from settings.

Each adapter module exposes `from_settings(base_url: str) -> adapter`, reading its own
credentials with `provider_secret`. Adapters hold their credentials, so they are rebuilt
after SECRET_CACHE_SECONDS: a key rotated in Secrets Manager is picked up by warm
functions within that time.
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import TYPE_CHECKING

from motionrelay.settings import PROVIDERS, SECRET_CACHE_SECONDS, get_settings, provider_secret

if TYPE_CHECKING:
    from motionrelay.providers.base import ProviderAdapter

_adapters: dict[str, tuple[float, ProviderAdapter]] = {}
_lock = threading.Lock()


def _build(name: str) -> ProviderAdapter:
    if name not in PROVIDERS:
        raise KeyError(f"unknown provider {name!r}")
    module = importlib.import_module(f"motionrelay.providers.{name}")  # lazy: cold starts
    # The base URL, like the credentials, may come from the provider secret (a deployment that
    # points a provider at a proxy sets MOTIONRELAY_<P>_BASE_URL there).
    base_url = (get_settings().provider_base_urls.get(name, "")
                or provider_secret(name, "BASE_URL").rstrip("/"))
    return module.from_settings(base_url)


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
    return name in PROVIDERS


def reset_adapters() -> None:
    _adapters.clear()
