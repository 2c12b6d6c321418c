"""Jobs under injected faults (MOTIONRELAY_LOCAL_FAULTS): invocations killed at random I/O
boundaries, SQS messages delivered twice, an extra poller run on every tick.

A client that retries a 5xx with the same Idempotency-Key, as the README tells clients to,
must see every job it was given end, each succeeded one with the right bytes, and no job
placed with a provider twice. With the placement and notification of today this does not
hold yet (see the xfail reason): the figures are printed either way.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.integration.stacks import start_stack

from motionrelay_local import demo
from motionrelay_local.stack import LocalStack

pytestmark = pytest.mark.integration

FAULTS = "crash=0.2,redeliver=0.3,overlap=1,seed=11"
JOBS = 6
WAIT_SECONDS = 75.0
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    yield from start_stack(routing="kie,novita,aimlapi,pixazo,vibedream", faults=FAULTS,
                           extra_env={"MOTIONRELAY_JOB_DEADLINE_SECONDS": "60"})


def submit(api: httpx.Client, key: str) -> dict | None:
    """POST until the API answers 202 (or gives up): a crash is a 500 to the client."""
    request = {**demo.sample_request(), "quality": "std"}
    request.pop("prompt", None)  # Pixazo refuses a prompt; routing may pick any of the five
    for _ in range(8):
        resp = api.post("/v1/jobs", json=request, headers={"Idempotency-Key": key})
        if resp.status_code == 202:
            return resp.json()
        if resp.status_code == 409 and resp.json()["error"]["code"] == "idempotency_in_progress":
            time.sleep(1.0)
            continue
        assert resp.status_code >= 500, resp.text
        time.sleep(0.3)
    return None


@pytest.mark.xfail(reason="crash-safe placement is not built yet: an API invocation killed after the job "
                          "write and before the submit leaves the job queued with no due-index entry, and a "
                          "retry after the idempotency record expires creates a second job", strict=False)
def test_every_job_a_client_was_given_ends_and_is_placed_once(stack: LocalStack, api: httpx.Client):
    jobs = [submit(api, f"faults-{i}-{time.time_ns()}") for i in range(JOBS)]
    accepted = [j for j in jobs if j is not None]
    deadline = time.monotonic() + WAIT_SECONDS
    final: dict[str, dict] = {}
    while time.monotonic() < deadline and len(final) < len(accepted):
        for job in accepted:
            if job["id"] not in final:
                resp = api.get(f"/v1/jobs/{job['id']}")
                if resp.status_code == 200 and resp.json()["status"] in TERMINAL:
                    final[job["id"]] = resp.json()
        time.sleep(0.5)

    placed: dict[str, int] = {}
    for task in list(stack.sandbox.tasks.values()):
        text = json.dumps(task.request) + (task.callback_url or "")
        for job in accepted:
            if job["id"] in text:
                placed[job["id"]] = placed.get(job["id"], 0) + 1
    right_bytes = 0
    for job in final.values():
        if job["status"] == "succeeded":
            video = httpx.get(job["output"]["url"], timeout=30, trust_env=False).content
            right_bytes += hashlib.sha256(video).hexdigest() == job["output"]["sha256"]
    succeeded = sum(j["status"] == "succeeded" for j in final.values())
    print(f"\nfaults {FAULTS}: {len(accepted)}/{JOBS} accepted, {len(final)} terminal ({succeeded} "
          f"succeeded, {right_bytes} with the right sha256), tasks per job {sorted(placed.values())}, "
          f"crashes {dict(stack.stats['crashes'])}, redeliveries {stack.stats['redeliveries']}")

    assert len(accepted) == JOBS, "a client retrying with its Idempotency-Key was never given its job"
    assert len(final) == len(accepted), [j["id"] for j in accepted if j["id"] not in final]
    assert right_bytes == succeeded
    assert all(n <= 1 for n in placed.values()), placed
