"""The ambiguous-submit policy with a provider that can be asked (Kling's external_task_id):
a submit whose answer was lost is looked up by the job id, so a job Kling took is neither
failed over (paid twice) nor left waiting, and one Kling did not take moves on at once."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from conftest import AIMLAPI_URL, FakeAimlapi
from motionrelay.domain.job import Phase
from motionrelay.infra.jobs_table import JobStore
from motionrelay.settings import reset_settings
from test_api import post_job, sample_request
from test_failover import outcomes
from test_placement import Died, die_before_placed, only_job_id, run_poller

KLING_URL = "https://api.kling.example"


class FakeKling:
    """Kling's documented create and query endpoints; `lose_answer` takes the task and then
    drops the connection (the answer never arrives), `drop_request` drops it unread."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict] = {}
        self.submits = 0
        self.lose_answer = self.drop_request = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Bearer ey")
        if request.method == "POST":
            self.submits += 1
            if self.drop_request:
                raise httpx.ReadTimeout("no answer")
            body = json.loads(request.content)
            external = body["external_task_id"]
            if any(t["task_info"]["external_task_id"] == external for t in self.tasks.values()):
                return httpx.Response(400, json={"code": 1201, "message": "external_task_id already exists"})
            task = {"task_id": f"80{len(self.tasks)}", "task_status": "submitted",
                    "task_info": {"external_task_id": external}}
            self.tasks[task["task_id"]] = task
            if self.lose_answer:
                raise httpx.ReadTimeout("taken, answer lost")
            return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": task})
        key = request.url.path.rsplit("/", 1)[-1]
        task = self.tasks.get(key) or next(
            (t for t in self.tasks.values() if t["task_info"]["external_task_id"] == key), None)
        if task is None:
            return httpx.Response(404, json={"code": 1203, "message": "task not found"})
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": task})


@pytest.fixture
def kling(aws, kie, monkeypatch):
    fake, aiml = FakeKling(), FakeAimlapi()
    monkeypatch.setenv("MOTIONRELAY_ROUTING", "kling,aimlapi")
    monkeypatch.setenv("MOTIONRELAY_KLING_ACCESS_KEY", "ak")
    monkeypatch.setenv("MOTIONRELAY_KLING_SECRET_KEY", "sk")
    monkeypatch.setenv("MOTIONRELAY_KLING_BASE_URL", KLING_URL)
    monkeypatch.setenv("MOTIONRELAY_AIMLAPI_API_KEY", "aiml-test-key")
    monkeypatch.setenv("MOTIONRELAY_AIMLAPI_BASE_URL", AIMLAPI_URL)
    reset_settings()
    from motionrelay.registry import reset_adapters

    reset_adapters()

    def route(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        return fake.handle(request) if host == "api.kling.example" else aiml.handle(request)

    monkeypatch.setattr("motionrelay.submission.provider_client",
                        lambda timeout: httpx.Client(transport=httpx.MockTransport(route)))
    yield fake, aiml
    reset_adapters()


def test_a_lost_answer_is_found_by_the_job_id_and_not_paid_twice(kling):
    fake, aiml = kling
    fake.lose_answer = True
    status, job = post_job(sample_request())
    assert status == 202 and job["provider"] == "kling" and job["provider_task_id"] == "800"
    assert outcomes(job) == [("kling", "recovered"), ("kling", "submitted")]
    assert fake.submits == 1 and aiml.submits == 0


def test_a_request_kling_never_took_moves_on_at_once(kling):
    fake, aiml = kling
    fake.drop_request = True
    _, job = post_job(sample_request())
    assert outcomes(job)[0] == ("kling", "retryable_error") and job["provider"] == "aimlapi"
    assert fake.tasks == {} and aiml.submits == 1


def test_a_placer_that_died_after_kling_took_the_job_is_recovered_by_the_next(kling, monkeypatch):
    fake, aiml = kling
    dying = die_before_placed(monkeypatch)
    with pytest.raises(Died):
        post_job(sample_request())
    job_id = only_job_id()
    earlier = JobStore().get(job_id).submitting
    dying[0] = False
    run_poller(after_seconds=120)
    job = JobStore().get(job_id)
    assert job.phase is Phase.QUEUED and (job.provider, job.provider_task_id) == ("kling", "800")
    assert outcomes({"attempts": job.attempts}) == [("kling", "recovered"), ("kling", "submitted")]
    assert job.callback_token_hash == earlier["token_hash"], "Kling calls back with the first submit's token"
    assert fake.submits == 1 and aiml.submits == 0
    assert time.time() < job.deadline_at
