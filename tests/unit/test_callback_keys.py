"""Published callback keys (fal's JWKS): cached, fetched again once when none verifies
(rotation), never more often than MIN_REFETCH_SECONDS, and a 503 when they cannot be had."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from motionrelay import callback_keys
from motionrelay.providers.base import CallbackRejected
from motionrelay.providers.fal import FalAdapter
from test_fal_adapter import jwks, signed

BODY = json.dumps({"request_id": "req-1", "status": "OK"}).encode()


class Jwks:
    """A JWKS endpoint whose key set the test swaps; counts fetches."""

    def __init__(self, *keys) -> None:
        self.keys, self.fetches, self.status = list(keys), 0, 200

    def client(self) -> httpx.Client:
        def handle(request: httpx.Request) -> httpx.Response:
            self.fetches += 1
            return httpx.Response(self.status, json=jwks(*self.keys))
        return httpx.Client(transport=httpx.MockTransport(handle))


@pytest.fixture(autouse=True)
def _fresh_cache():
    callback_keys.reset()
    yield
    callback_keys.reset()


@pytest.fixture
def world(monkeypatch):
    """The JWKS endpoint behind the SSRF-guarded client callback_keys makes, and its clock."""
    endpoint = Jwks()
    now = [1000.0]
    monkeypatch.setattr("motionrelay.infra.netguard.guarded_client", lambda **_: endpoint.client())
    monkeypatch.setattr(callback_keys, "clock", lambda: now[0])
    return endpoint, now


def verify(adapter, headers):
    from motionrelay.callbacks import _verify

    return _verify("fal", adapter, headers, BODY, time.time())


def test_keys_are_cached_and_refetched_once_after_rotation(world):
    endpoint, now = world
    adapter = FalAdapter(api_key="k")
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    endpoint.keys = [old]
    assert verify(adapter, signed(BODY, key=old)).task_id == "req-1"
    assert verify(adapter, signed(BODY, key=old)).task_id == "req-1"
    assert endpoint.fetches == 1, "cached"
    endpoint.keys = [new]  # fal rotated
    now[0] += callback_keys.MIN_REFETCH_SECONDS + 1
    assert verify(adapter, signed(BODY, key=new)).task_id == "req-1"
    assert endpoint.fetches == 2, "one refetch picked up the new key"
    now[0] += callback_keys.KEYS_TTL_SECONDS + 1
    assert verify(adapter, signed(BODY, key=new)).task_id == "req-1"
    assert endpoint.fetches == 3, "fetched again after the TTL"


def test_forgeries_cannot_make_us_fetch_more_than_once_per_interval(world):
    endpoint, _ = world
    endpoint.keys = [Ed25519PrivateKey.generate()]
    adapter = FalAdapter(api_key="k")
    for _ in range(5):
        with pytest.raises(CallbackRejected):
            verify(adapter, signed(BODY, key=Ed25519PrivateKey.generate()))
    assert endpoint.fetches == 1


def test_keys_that_cannot_be_fetched_are_keys_unavailable(world):
    endpoint, _ = world
    endpoint.status = 503
    with pytest.raises(callback_keys.KeysUnavailable):
        verify(FalAdapter(api_key="k"), signed(BODY))
    callback_keys.reset()
    local = FalAdapter(api_key="k", jwks_url="http://127.0.0.1:9/jwks.json")
    with pytest.raises(callback_keys.KeysUnavailable):  # SSRF guard: plain http only in the local stack
        verify(local, signed(BODY))
