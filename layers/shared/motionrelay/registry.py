"""The provider registry: the one place that turns settings into adapters.

Adapters are sans-I/O and read no settings: each module declares the provider secret's fields
it needs (`CREDENTIALS`) and a `from_credentials(base_url, credentials)`. The registry reads
those fields (`MOTIONRELAY_<P>_<field>`: the environment first, else the provider secret) and
the base URL, and builds the adapter lazily (cold starts import only the providers used).
Adapters hold their credentials, so they are rebuilt after SECRET_CACHE_SECONDS: a key rotated
in Secrets Manager is picked up by warm functions within that time.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from typing import TYPE_CHECKING

from motionrelay.settings import PROVIDERS, SECRET_CACHE_SECONDS, get_settings

if TYPE_CHECKING:
    from motionrelay.providers.base import ProviderAdapter

_adapters: dict[str, tuple[float, ProviderAdapter]] = {}
_lock = threading.Lock()


def provider_secret(provider: str, suffix: str = "API_KEY") -> str:
    """A provider credential: `MOTIONRELAY_<P>_<suffix>` from the env, else from the secret."""
    name = f"MOTIONRELAY_{provider.upper()}_{suffix}"
    value = os.environ.get(name, "").strip()
    if value:
        return value
    secret_name = get_settings().provider_secret_name
    if not secret_name:
        return ""
    from motionrelay.infra.secrets import json_secret  # lazy: Powertools Parameters, boto3

    return str(json_secret(secret_name, SECRET_CACHE_SECONDS).get(name, "")).strip()


def build_adapter(name: str, *, base_url: str | None = None) -> ProviderAdapter:
    """A fresh adapter for NAME with its credentials (and, unless given, base URL) read now."""
    if name not in PROVIDERS:
        raise KeyError(f"unknown provider {name!r}")
    module = importlib.import_module(f"motionrelay.providers.{name}")  # lazy: cold starts
    credentials = {field: provider_secret(name, field) for field in module.CREDENTIALS}
    # The base URL, like the credentials, may come from the provider secret (a deployment that
    # points a provider at a proxy sets MOTIONRELAY_<P>_BASE_URL there).
    if base_url is None:
        base_url = (get_settings().provider_base_urls.get(name, "")
                    or provider_secret(name, "BASE_URL").rstrip("/"))
    return module.from_credentials(base_url, credentials)


def get_adapter(name: str) -> ProviderAdapter:
    now = time.monotonic()
    cached = _adapters.get(name)
    if cached and now - cached[0] < SECRET_CACHE_SECONDS:
        return cached[1]
    with _lock:
        adapter = build_adapter(name)
        _adapters[name] = (now, adapter)
        return adapter


def has_credentials(name: str) -> bool:
    """Whether the provider's key (the first field its adapter declares) is set: without it the
    deployment cannot use the provider, whatever the routing says."""
    if name not in PROVIDERS:
        return False
    module = importlib.import_module(f"motionrelay.providers.{name}")
    return bool(provider_secret(name, module.CREDENTIALS[0]))


def known_provider(name: str) -> bool:
    return name in PROVIDERS


def reset_adapters() -> None:
    _adapters.clear()
