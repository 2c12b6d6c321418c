"""Provider callbacks through `callbacks.handle_callback` over the in-memory table (fakes.py)
and a real Kie adapter whose status re-fetch answers from an httpx.MockTransport: the
verification rules and the re-fetch, without moto or the API."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from conftest import KIE_HMAC, KIE_KEY, kie_signature
from fakes import MemoryJobStore
from motionrelay.callbacks import handle_callback
from motionrelay.domain import transitions as t
from motionrelay.domain.errors import NotFound, Unauthorized
from motionrelay.providers.kie import KieAdapter
from motionrelay.submission import callback_token_hash

AT = "2026-12-02T00:00:00.000Z"
JOB = "job_" + "cd" * 16
TASK = "task-42"
TOKEN = "per-job-token"


class Kie:
    """recordInfo as Kie answers it (the state is what the test sets); requests are kept."""

    def __init__(self) -> None:
        self.state, self.requests = "generating", []

    def client(self) -> httpx.Client:
        def answer(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(200, json={"code": 200, "msg": "success",
                                             "data": {"taskId": TASK, "state": self.state}})

        return httpx.Client(transport=httpx.MockTransport(answer))


@pytest.fixture
def store() -> MemoryJobStore:
    fake = MemoryJobStore()
    fake.create(t.change("created", values={
        "id": JOB, "tenant_id": "t", "provider": "kie", "placing_by": "a", "placing_until": 1.0,
        "created_at": AT, "updated_at": AT, "attempts": [], "deadline_at": 10**10,
        "request": {"quality": "std"}}, due_at=2.0, at=AT))
    fake.write(JOB, t.change("placed", values={"provider": "kie", "provider_task_id": TASK,
                                               "callback_token_hash": callback_token_hash(TOKEN)},
                             due_at=100.0, guard_value="a", at=AT))
    return fake


def adapters(name: str) -> KieAdapter:
    return KieAdapter(api_key=KIE_KEY, base_url="https://api.kie.example", webhook_hmac_key=KIE_HMAC)


def call(store, kie: Kie, *, signature: str | None = None, task: str = TASK, token: str | None = TOKEN,
         job_id: str = JOB, sent_at: float | None = None):
    now = time.time()
    stamp = str(int(now if sent_at is None else sent_at))
    headers = {"x-webhook-timestamp": stamp,
               "x-webhook-signature": signature or kie_signature(task, stamp)}
    body = json.dumps({"code": 200, "data": {"taskId": task, "state": "success"}, "taskId": task}).encode()
    return handle_callback("kie", job_id, headers, body, {"token": token} if token else {}, store=store,
                           http_client=kie.client(), now=now, adapters=adapters)


def test_a_verified_callback_is_confirmed_by_a_refetch_not_by_its_body(store):
    kie = Kie()  # the body says success; the provider, asked, says it is still generating
    assert call(store, kie) == {"received": True, "applied": True}
    assert [r.url.path for r in kie.requests] == ["/api/v1/jobs/recordInfo"]
    assert store.get(JOB).phase.value == "running"


def test_a_forged_signature_or_a_stale_timestamp_is_refused_before_any_refetch(store):
    kie = Kie()
    with pytest.raises(Unauthorized):
        call(store, kie, signature=kie_signature(TASK, str(int(time.time())), key="not-the-key"))
    with pytest.raises(Unauthorized):
        call(store, kie, sent_at=time.time() - 3600)  # replayed an hour later, validly signed
    assert kie.requests == [] and store.get(JOB).phase.value == "queued"


def test_a_callback_for_another_task_or_job_is_refused(store):
    kie = Kie()
    with pytest.raises(Unauthorized):
        call(store, kie, task="someone-elses-task")
    with pytest.raises(NotFound):
        call(store, kie, job_id="job_" + "00" * 16)
    with pytest.raises(Unauthorized):
        call(store, kie, token="guessed")
    assert kie.requests == []


def test_a_late_callback_on_a_finished_job_changes_nothing(store):
    store.write(JOB, t.change("canceled", due_at=5.0, at=AT))
    kie = Kie()
    assert call(store, kie) == {"received": True, "applied": False}
    assert kie.requests == [] and store.get(JOB).phase.value == "canceled"
