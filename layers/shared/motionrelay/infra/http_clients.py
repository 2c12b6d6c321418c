"""Where HTTP clients for provider APIs are made (one place: tests swap the transport here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def provider_client(timeout: float) -> httpx.Client:
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                        headers={"User-Agent": "motionrelay/0.1"})


def async_provider_client(timeout: float, max_connections: int) -> httpx.AsyncClient:
    """The poller's client: one connection pool shared by every provider's requests."""
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        headers={"User-Agent": "motionrelay/0.1"},
    )
