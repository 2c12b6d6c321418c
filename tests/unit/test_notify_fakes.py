"""Notification delivery and webhook secrets over the in-memory table (tests/unit/fakes.py,
kept honest by test_fakes.py): the claim, duplicate and rotation rules without moto."""

from __future__ import annotations

import httpx
import pytest
from standardwebhooks import Webhook

from fakes import MemoryJobStore
from motionrelay import notify, webhook_secrets
from motionrelay.domain import transitions as t

AT = "2026-12-02T00:00:00.000Z"
JOB = "job_" + "ab" * 16
URL = "https://hooks.client.example/motionrelay"


@pytest.fixture
def store() -> MemoryJobStore:
    fake = MemoryJobStore()
    fake.create(t.change("created", values={
        "id": JOB, "tenant_id": "tenant-a", "provider": "kie", "placing_by": "a", "placing_until": 1.0,
        "created_at": AT, "updated_at": AT, "attempts": [], "deadline_at": 10_000,
        "request": {"quality": "std", "webhook_url": URL}}, due_at=2.0, at=AT))
    fake.write(JOB, t.change("canceled", due_at=5.0, at=AT))
    return fake


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.status, self.requests = status, []

    def client(self) -> httpx.Client:
        def answer(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(self.status)

        return httpx.Client(transport=httpx.MockTransport(answer))


def test_a_notification_is_delivered_once_and_its_duplicate_is_not_posted(store):
    receiver = Receiver()
    msg_id = notify.webhook_id(JOB, "canceled")
    assert notify.deliver(JOB, msg_id, store=store, http_client=receiver.client()) == "delivered"
    assert notify.deliver(JOB, msg_id, store=store, http_client=receiver.client()) == "duplicate"
    assert len(receiver.requests) == 1 and notify.delivered_ids(JOB, store=store) == {msg_id}
    request = receiver.requests[0]
    secret = webhook_secrets.read("tenant-a", store).secret
    Webhook(secret).verify(request.content, dict(request.headers))  # signed with the tenant's secret


def test_a_delivery_in_flight_makes_the_duplicate_wait_for_its_lease(store):
    msg_id = notify.webhook_id(JOB, "canceled")
    assert notify._claim(JOB, msg_id, 30, store=store)[0] == "claimed"
    outcome, left = notify._claim(JOB, msg_id, 30, store=store)
    assert outcome == "busy" and 1 <= left <= 31


def test_a_failed_attempt_releases_the_claim_for_the_retry(store):
    msg_id = notify.webhook_id(JOB, "canceled")
    with pytest.raises(notify.NotifyRetry):
        notify.deliver(JOB, msg_id, store=store, http_client=Receiver(503).client())
    assert notify._claim(JOB, msg_id, 30, store=store)[0] == "claimed"  # free again at once


def test_a_message_for_another_state_is_skipped(store):
    receiver = Receiver()
    assert notify.deliver(JOB, notify.webhook_id(JOB, "succeeded"), store=store,
                          http_client=receiver.client()) == "skipped"
    assert receiver.requests == []


def test_rotation_keeps_the_old_secret_signing_for_the_grace_period():
    store = MemoryJobStore()
    first = webhook_secrets.get_or_create("tenant-a", store)
    assert webhook_secrets.get_or_create("tenant-a", store) == first  # stays put
    rotated = webhook_secrets.rotate("tenant-a", now=1_000_000.0, store=store)
    assert rotated.previous == first.secret
    assert rotated.signing_secrets(1_000_000.0 + 60) == [rotated.secret, first.secret]
    assert rotated.signing_secrets(1_000_000.0 + webhook_secrets.GRACE_SECONDS + 1) == [rotated.secret]


def test_a_rotation_that_loses_the_race_retries_on_the_newer_secret(monkeypatch):
    store = MemoryJobStore()
    webhook_secrets.get_or_create("tenant-a", store)
    real_replace, raced = store.replace_webhook_secret, []

    def replace_after_another(tenant_id, **kwargs):
        if not raced:  # another rotation lands between this one's read and its write
            raced.append(None)
            raced[0] = webhook_secrets.rotate(tenant_id, store=store)
        return real_replace(tenant_id, **kwargs)

    monkeypatch.setattr(store, "replace_webhook_secret", replace_after_another)
    mine = webhook_secrets.rotate("tenant-a", store=store)
    assert mine.previous == raced[0].secret and webhook_secrets.read("tenant-a", store) == mine
