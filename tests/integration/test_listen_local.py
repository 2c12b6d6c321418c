"""The `motionrelay listen` loop against the local stack: a job whose webhook_url is the
listener's plain-http loopback URL gets its signed notification delivered, and verified."""

from __future__ import annotations

import io
import time

import httpx

from motionrelay_cli.api import Api
from motionrelay_cli.listen import Listener
from motionrelay_local.stack import LocalStack


def test_a_job_notifies_motionrelay_listen_which_verifies_it(stack: LocalStack, api: httpx.Client,
                                                           sample_request: dict):
    out, err = io.StringIO(), io.StringIO()
    with Api(stack.api_url, stack.dev_api_key) as client:
        listener = Listener(client, out, err).start()
        try:
            created = api.post("/v1/jobs", json={**sample_request, "quality": "std",
                                                 "webhook_url": listener.url})
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                    e["verified"] and e["event"]["data"]["id"] == job_id for e in listener.events):
                time.sleep(0.2)
        finally:
            listener.close()
    events = [e for e in listener.events if (e["event"] or {}).get("data", {}).get("id") == job_id]
    assert events and events[0]["verified"], out.getvalue()
    assert events[0]["event"]["type"] == "job.succeeded"
    assert events[0]["event"]["data"]["output"]["sha256"]
    line = out.getvalue().splitlines()[0].split()
    assert line[1:5] == ["job.succeeded", job_id, "succeeded", "verified"]
