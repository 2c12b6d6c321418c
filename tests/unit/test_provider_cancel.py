"""A canceled job's task is stopped at providers that offer a cancel call (fal, Replicate);
best effort: failures are logged, never raised."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from motionrelay.provider_cancel import cancel_at_provider
from motionrelay.registry import reset_adapters


@pytest.fixture(autouse=True)
def _fal_key(monkeypatch):
    monkeypatch.setenv("MOTIONRELAY_FAL_API_KEY", "fal-key")
    reset_adapters()
    yield
    reset_adapters()


def client(status: int, body: dict, seen: list) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)
    return httpx.Client(transport=httpx.MockTransport(handle))


def job(provider: str = "fal", task: str | None = "req-1"):
    return SimpleNamespace(id="job_1", provider=provider, provider_task_id=task)


def test_a_queued_fal_request_is_canceled_at_fal():
    seen: list[httpx.Request] = []
    assert cancel_at_provider(job(), http_client=client(202, {"status": "CANCELLATION_REQUESTED"}, seen))
    assert [(r.method, r.url.path) for r in seen] == [("PUT", "/fal-ai/kling-video/requests/req-1/cancel")]
    assert seen[0].headers["authorization"] == "Key fal-key"


def test_refusals_and_failures_are_not_raised():
    seen: list[httpx.Request] = []
    assert cancel_at_provider(job(), http_client=client(400, {"status": "ALREADY_COMPLETED"}, seen)) is False

    def down(request):
        raise httpx.ConnectError("down")
    assert cancel_at_provider(job(), http_client=httpx.Client(transport=httpx.MockTransport(down))) is False


def test_nothing_to_ask():
    seen: list[httpx.Request] = []
    assert cancel_at_provider(job(task=None), http_client=client(202, {}, seen)) is None
    assert cancel_at_provider(job(provider="novita"), http_client=client(202, {}, seen)) is None
    assert seen == []
