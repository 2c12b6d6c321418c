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
import importlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.receiver import Receiver
from tests.integration.stacks import start_stack

from motionrelay_local import demo
from motionrelay_local.stack import LocalStack

pytestmark = pytest.mark.integration

FAULTS = os.environ.get("MOTIONRELAY_FAULT_TEST_FAULTS", "crash=0.2,redeliver=0.3,overlap=2,seed=11")
JOBS = int(os.environ.get("MOTIONRELAY_FAULT_TEST_JOBS", "100"))
DEADLINE_SECONDS = 240
WAIT_SECONDS = DEADLINE_SECONDS + 30.0  # every job is terminal by its deadline + a poller period
# The providers' own faults, in the sandbox: refused submits (5xx, 429), failing tasks,
# slow answers, callbacks delivered twice.
PROVIDER_FAULTS = {
    "kie": {"fail_submit": 500, "fail_submit_times": 3, "callback_retry_delays": [0.3]},
    "novita": {"fail_submit": 429, "fail_submit_times": 2, "latency": 0.1},
    "aimlapi": {"latency": 0.2},
    "pixazo": {"fail_submit": 503, "fail_submit_times": 2},
    "vibedream": {"fail_task": "the simulated model failed"},
}
SUBMIT_RETRY_SECONDS = 90.0
PROVIDERS = ("kie", "novita", "aimlapi", "pixazo", "vibedream")
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def stack(certificate: tuple[Path, Path]) -> Iterator[LocalStack]:
    # A 20 s transfer (the template's is 300 s): a killed copy's lease ends, and the copy is
    # retried, within the test's time. A tick every 5 s with 5 s runs keeps the schedule's
    # ratio of AWS's (a run per minute, 60 s each): a poller waits for what falls due.
    yield from start_stack(routing="kie,novita,aimlapi,pixazo,vibedream", faults=FAULTS, poll_interval=5.0,
                           extra_env={"MOTIONRELAY_JOB_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
                                      "SSL_CERT_FILE": str(certificate[0])},
                           timeouts={"TransferFunction": 20})


@pytest.fixture(scope="module", autouse=True)
def provider_faults(stack: LocalStack) -> None:
    for provider, knobs in PROVIDER_FAULTS.items():
        stack.sandbox.configure(provider, **knobs)


def submit(api: httpx.Client, key: str, provider: str | None = None,
           webhook_url: str | None = None) -> dict | None:
    """POST until the API answers 202, as a client should: a crash is a 500 (or no answer), and a retry while
    the crashed request's idempotency record is still in progress (until that invocation's
    timeout, 29 s) is a 409 `idempotency_in_progress`."""
    request = demo.sample_request(provider)
    request.pop("prompt", None)  # Pixazo refuses a prompt; routing may pick any of the five
    if webhook_url:
        request["webhook_url"] = webhook_url
    if provider:  # what that provider serves (VibeDream: Pro only)
        qualities = importlib.import_module(f"motionrelay.providers.{provider}").CAPABILITIES.qualities
        request["quality"] = "std" if "std" in qualities else "pro"
    give_up = time.monotonic() + SUBMIT_RETRY_SECONDS
    while time.monotonic() < give_up:
        try:
            resp = api.post("/v1/jobs", json=request, headers={"Idempotency-Key": key})
        except httpx.TimeoutException:
            continue  # no answer (API Gateway's 30 s, or a slow machine): retry with the same key
        if resp.status_code == 202:
            return resp.json()
        if resp.status_code == 409:
            assert resp.json()["error"]["code"] == "idempotency_in_progress", resp.text
        else:
            assert resp.status_code >= 500, resp.text
        time.sleep(1.0)
    return None


def test_every_job_a_client_was_given_ends_and_is_placed_once(stack: LocalStack, api: httpx.Client,
                                                               receiver: Receiver):
    def one(i: int) -> dict | None:
        headers = {"Authorization": f"Bearer {stack.dev_api_key}"}
        with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30, trust_env=False) as own:
            # Half the jobs name a provider (each of the five in turn), half are routed.
            provider = PROVIDERS[(i // 2) % len(PROVIDERS)] if i % 2 == 0 else None
            return submit(own, f"faults-{i}-{time.time_ns()}", provider, f"{receiver.url}/hooks/{i}")

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
    # Notifications: every terminal job's arrives (a swept one a minute, scaled, after its
    # writer died); copies (at-least-once) carry one webhook-id.
    hook_ids: dict[str, set[str]] = {}
    deliveries = 0
    notify_by = time.monotonic() + 60
    while time.monotonic() < notify_by:
        hook_ids, deliveries = {}, 0
        for request in list(receiver.received):
            body = json.loads(request["body"])
            hook_ids.setdefault(body["data"]["id"], set()).add(request["headers"]["webhook-id"])
            deliveries += 1
        if set(hook_ids) >= set(final):
            break
        time.sleep(1.0)
    succeeded = sum(j["status"] == "succeeded" for j in final.values())
    downloads = sum(n for (_, endpoint), n in stack.sandbox.requests.items() if endpoint == "files")
    errors = Counter((j["error"] or {}).get("code") for j in final.values() if j["status"] == "failed")
    endings = Counter((j["provider"], j["status"], (j["error"] or {}).get("message", "")[:40])
                      for j in final.values())
    print(f"\nfaults {FAULTS}: {len(accepted)}/{JOBS} accepted, {len(final)} terminal ({succeeded} "
          f"succeeded, {right_bytes} with the right sha256), tasks per job {dict(Counter(placed.values()))}, "
          f"crashes {dict(stack.stats['crashes'])}, redeliveries {stack.stats['redeliveries']}, "
          f"failed by code {dict(errors)}, multiple tasks {[n for n in placed.values() if n > 1]}, "
          f"output downloads {downloads}")
    print(f"  endings: {dict(endings)}")
    print(f"  notifications: {len(hook_ids)} jobs notified, {deliveries} deliveries, "
          f"{sum(len(ids) for ids in hook_ids.values())} distinct webhook-ids")

    for job in accepted:
        if job["id"] not in final:
            now = api.get(f"/v1/jobs/{job['id']}").json()
            print(f"  not terminal: {job['id']} {now['status']} {now['provider']} "
                  f"{[(a['provider'], a['outcome']) for a in now['attempts']]}")
    assert len(accepted) == JOBS, "a client retrying with its Idempotency-Key was never given its job"
    assert len(final) == len(accepted), [j["id"] for j in accepted if j["id"] not in final]
    assert right_bytes == succeeded
    # Paid once, unless the job itself says a submit was ambiguous (or surplus).
    for job_id, n in placed.items():
        if n > 1:
            said = {a["outcome"] for a in final.get(job_id, {}).get("attempts", [])}
            assert said & {"ambiguous", "surplus"}, (job_id, n, said)
    # Output downloads: one per succeeded job, plus one per transfer that was interrupted.
    interrupted = stack.stats["crashes"]["TransferFunction"] + stack.stats["timeouts"]["TransferFunction"]
    assert downloads <= succeeded + interrupted, (downloads, succeeded, interrupted)
    # A job that ran out of time is terminal too (the deadline is the backstop); say why.
    for job in final.values():
        if (job["error"] or {}).get("code") == "timeout":
            print(f"  timed out: {job['id']} {job['provider']} "
                  f"{[(a['provider'], a['outcome'], a.get('code')) for a in job['attempts']]}")
    assert set(hook_ids) == set(final), set(final) - set(hook_ids)
    assert all(len(ids) == 1 for ids in hook_ids.values()), hook_ids
