"""The poller reads a fal job as fal needs: the status, then the result once COMPLETED."""

from __future__ import annotations

import time

import httpx

from conftest import FakeContext
from motionrelay import poller
from motionrelay.domain.job import Phase
from motionrelay.infra.jobs_table import JobStore
from motionrelay.lifecycle import schedule_poll
from test_callback_keys import fal_env, fal_job  # noqa: F401 - fixtures


def test_a_completed_fal_request_is_collected_from_its_result(fal_env, monkeypatch):  # noqa: F811
    fal_job("job_falpoll1")
    schedule_poll(JobStore(), "job_falpoll1", time.time() - 1)
    seen: list[str] = []

    def fal(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED"})
        return httpx.Response(200, json={"video": {"url": "https://v3b.fal.media/o.mp4"}})

    transport = httpx.MockTransport(fal)
    monkeypatch.setattr("motionrelay.infra.http_clients.async_provider_client",
                        lambda timeout, max_connections: httpx.AsyncClient(transport=transport))
    report = poller.run(FakeContext().get_remaining_time_in_millis)
    assert report.polled == 1
    assert seen == ["/fal-ai/kling-video/requests/req-1/status", "/fal-ai/kling-video/requests/req-1"]
    job = JobStore().get("job_falpoll1")
    assert job.phase is Phase.TRANSFERRING and job.output_source_url == "https://v3b.fal.media/o.mp4"
