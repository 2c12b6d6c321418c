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


# --------------------------------------------------------------------------- through handle_callback


def fal_job(job_id: str = "job_fal0001"):
    from conftest import seed_job

    return seed_job({
        "id": job_id, "tenant_id": "tenant-a", "phase": "queued", "provider": "fal",
        "provider_task_id": "req-1", "request": {"quality": "std", "character_orientation": "image"},
        "attempts": [], "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
        "deadline_at": int(time.time()) + 1800, "callback_token_hash": "x" * 64,
    })


@pytest.fixture
def fal_env(aws, monkeypatch):
    from motionrelay.registry import reset_adapters

    monkeypatch.setenv("MOTIONRELAY_FAL_API_KEY", "fal-key")
    reset_adapters()
    yield
    reset_adapters()


def test_a_signed_fal_callback_is_refetched_through_the_result(fal_env, world, monkeypatch):
    from motionrelay.callbacks import handle_callback
    from motionrelay.domain.job import Phase
    from motionrelay.infra.jobs_table import JobStore

    endpoint, _ = world
    key = Ed25519PrivateKey.generate()
    endpoint.keys = [key]
    fal_job()
    seen: list[str] = []

    def fal(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED"})
        return httpx.Response(200, json={"video": {"url": "https://v3b.fal.media/o.mp4"}})

    client = httpx.Client(transport=httpx.MockTransport(fal))
    result = handle_callback("fal", "job_fal0001", signed(BODY, key=key), BODY, {}, http_client=client)
    assert result == {"received": True, "applied": True}, "signed: no URL token needed"
    assert seen == ["/fal-ai/kling-video/requests/req-1/status", "/fal-ai/kling-video/requests/req-1"]
    job = JobStore().get("job_fal0001")
    assert job.phase is Phase.TRANSFERRING and job.output_source_url == "https://v3b.fal.media/o.mp4"


def test_a_forged_fal_callback_is_401_and_unfetchable_keys_are_503(fal_env, world):
    from motionrelay.callbacks import handle_callback
    from motionrelay.domain.errors import ProviderUnavailable, Unauthorized
    from motionrelay.infra.jobs_table import JobStore

    endpoint, _ = world
    endpoint.keys = [Ed25519PrivateKey.generate()]
    fal_job()
    with pytest.raises(Unauthorized):
        handle_callback("fal", "job_fal0001", signed(BODY, key=Ed25519PrivateKey.generate()), BODY, {})
    callback_keys.reset()
    endpoint.status = 503
    before = time.time()
    with pytest.raises(ProviderUnavailable):
        handle_callback("fal", "job_fal0001", signed(BODY), BODY, {})
    from test_api import job_items

    [item] = [i for i in job_items() if i["id"]["S"] == "job_fal0001"]
    assert float(item["next_poll_at"]["N"]) >= before - 1, "the poller looks at the job now instead"
    assert JobStore().get("job_fal0001").phase.value == "queued"
