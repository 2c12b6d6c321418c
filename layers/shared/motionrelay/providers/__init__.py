"""Provider adapters, one module each, built lazily from settings."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from motionrelay.settings import get_settings, provider_secret

if TYPE_CHECKING:
    from motionrelay.providers.base import ProviderAdapter


@cache
def get_adapter(name: str) -> ProviderAdapter:
    base_url = get_settings().provider_base_urls.get(name, "")
    if name == "kie":
        from motionrelay.providers.kie import KieAdapter

        return KieAdapter(
            api_key=provider_secret("kie"),
            base_url=base_url,
            webhook_hmac_key=provider_secret("kie", "WEBHOOK_HMAC_KEY"),
        )
    raise KeyError(f"unknown provider {name!r}")


def known_provider(name: str) -> bool:
    return name in {"kie"}


def reset_adapters() -> None:
    get_adapter.cache_clear()
