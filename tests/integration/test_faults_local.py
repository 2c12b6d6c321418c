"""Jobs under injected faults (MOTIONRELAY_LOCAL_FAULTS): invocations killed at random I/O
boundaries, SQS messages delivered twice, an extra poller run on every tick.

A client that retries a 5xx with the same Idempotency-Key, as the README tells clients to,
must see every job it was given end, each succeeded one with the right bytes, and no job
placed with a provider twice. With the placement and notification of today this does not
hold yet (see the xfail reason): the figures are printed either way.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.integration.stacks import start_stack

from motionrelay_local import demo
from motionrelay_local.stack import LocalStack

pytestmark = pytest.mark.integration

FAULTS = os.environ.get("MOTIONRELAY_FAULT_TEST_FAULTS", "crash=0.2,redeliver=0.3,overlap=2,seed=11")
JOBS = int(os.environ.get("MOTIONRELAY_FAULT_TEST_JOBS", "100"))
WAIT_SECONDS = 150.0  # the jobs' deadline is 60 s: every job is terminal well before this
# The providers' own faults, in the sandbox: refused submits (5xx, 429), failing tasks,
# slow answers, callbacks delivered twice.
PROVIDER_FAULTS = {
    "kie": {"fail_submit": 500, "fail_submit_times": 3, "callback_retry_delays": [0.3]},
    "novita": {"fail_submit": 429, "fail_submit_times": 2, "latency": 0.1},
    "aimlapi": {"latency": 0.2},
    "pixazo": {"fail_submit": 503, "fail_submit_times": 2},
    "vibedream": {"fail_task": "the simulated model failed"},
}
SUBMIT_RETRY_SECONDS = 45.0
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # A 20 s transfer (the template's is 300 s): a killed copy's lease ends, and the copy is
    # retried, within the test's time.
    yield from start_stack(routing="kie,novita,aimlapi,pixazo,vibedream", faults=FAULTS,
                           extra_env={"MOTIONRELAY_JOB_DEADLINE_SECONDS": "60"},
                           timeouts={"TransferFunction": 20})


@pytest.fixture(scope="module", autouse=True)
def provider_faults(stack: LocalStack) -> None:
    for provider, knobs in PROVIDER_FAULTS.items():
        stack.sandbox.configure(provider, **knobs)


def submit(api: httpx.Client, key: str) -> dict | None:
    """POST until the API answers 202, as a client should: a crash is a 500, and a retry while
    the crashed request's idempotency record is still in progress (until that invocation's
    timeout, 29 s) is a 409 `idempotency_in_progress`."""
    request = {**demo.sample_request(), "quality": "std"}
    request.pop("prompt", None)  # Pixazo refuses a prompt; routing may pick any of the five
    give_up = time.monotonic() + SUBMIT_RETRY_SECONDS
    while time.monotonic() < give_up:
        resp = api.post("/v1/jobs", json=request, headers={"Idempotency-Key": key})
        if resp.status_code == 202:
            return resp.json()
        if resp.status_code == 409:
            assert resp.json()["error"]["code"] == "idempotency_in_progress", resp.text
        else:
            assert resp.status_code >= 500, resp.text
        time.sleep(1.0)
    return None


@pytest.mark.xfail(reason="crash-safe placement is not built yet: an API invocation killed after the job "
                          "write and before the submit leaves the job queued with no due-index entry, and a "
                          "retry after the idempotency record expires creates a second job", strict=False)
def test_every_job_a_client_was_given_ends_and_is_placed_once(stack: LocalStack, api: httpx.Client):
    def one(i: int) -> dict | None:
        headers = {"Authorization": f"Bearer {stack.dev_api_key}"}
        with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30, trust_env=False) as own:
            return submit(own, f"faults-{i}-{time.time_ns()}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        jobs = list(pool.map(one, range(JOBS)))
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

    for job in accepted:
        if job["id"] not in final:
            now = api.get(f"/v1/jobs/{job['id']}").json()
            print(f"  not terminal: {job['id']} {now['status']} {now['provider']} "
                  f"{[(a['provider'], a['outcome']) for a in now['attempts']]}")
    assert len(accepted) == JOBS, "a client retrying with its Idempotency-Key was never given its job"
    assert len(final) == len(accepted), [j["id"] for j in accepted if j["id"] not in final]
    assert right_bytes == succeeded
    assert all(n <= 1 for n in placed.values()), placed
