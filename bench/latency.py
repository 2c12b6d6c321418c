"""Completion latency, end to end through the local stack (API, webhook, poller, transfer,
notifier, against the provider sandbox), time-scaled like bench/requests_per_job.py.

- Callback provider (Kie): from the sandbox marking a task done to the client's signed
  notification arriving at its HTTPS receiver, minus the pure copy time of the same output
  bytes (download from the sandbox + one put into the same S3) measured in the same run:
  what the gateway itself adds. Median and p95 over several jobs (goal: median <= 1.0 s).
- Polled provider (VibeDream, no callbacks): the detection lag (task done -> the job leaves
  `running` in the table) as a fraction of the task's run time (goal <= 0.10, at the
  requests per job bench/requests_per_job.py measures, goal <= 8). The sandbox and the poll
  schedule are compressed by the same factor, so the fraction is what a real job sees.

Last line: `RESULT latency <callback_median_s> <callback_p95_s> <polled_lag_fraction>`.

    .venv/bin/python bench/latency.py [--jobs 8] [--scale 0.1] [--polled-jobs 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import PATHS, ROOT

sys.path[:0] = [*PATHS, str(ROOT)]

JOB_SECONDS = 120.0  # a polled job's run time at the provider, real speed
PHASES = 3


def _stack(provider: str, scale: float, state_seconds: float, cert: Path):
    from motionrelay_local.stack import LocalStack

    # Ticks every 0.5 s: each shard's poll invocation lasts the scaled budget and waits for
    # what falls due itself; faster ticks only pile up on a 2-core machine.
    return LocalStack(port=0, poll_interval=0.5, sandbox_state_seconds=state_seconds, routing=provider,
                      environ={"MOTIONRELAY_POLL_TIME_SCALE": str(scale)},
                      extra_env={"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true",
                                 "SSL_CERT_FILE": str(cert)})


def _request(provider: str) -> dict:
    import importlib

    from motionrelay_local import demo

    caps = importlib.import_module(f"motionrelay.providers.{provider}").CAPABILITIES
    request = demo.sample_request(provider)
    request["quality"] = "pro" if "pro" in caps.qualities else "std"
    if not caps.prompt:
        request.pop("prompt", None)
    return request


def _task_of(stack, provider: str, known: set[str]) -> object:
    """The sandbox task the latest job created (tasks are keyed by id)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tasks = list(stack.sandbox.tasks.items())
        new = [t for tid, t in tasks if tid not in known and t.provider == provider]
        if new:
            known.add(new[0].task_id)
            return new[0]
        time.sleep(0.02)
    raise RuntimeError("no sandbox task appeared")


def _copy_seconds(stack, url: str) -> float:
    """The same bytes, copied by hand: download + one put into the stack's S3."""
    import httpx

    s3 = stack.client("s3")
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    started = time.perf_counter()
    data = httpx.get(url, timeout=30, verify=False).content  # noqa: S501 - the sandbox's loopback
    s3.put_object(Bucket=bucket, Key="bench/copy.mp4", Body=data)
    return time.perf_counter() - started


def callbacks(jobs: int, scale: float, cert: Path, receiver) -> list[float]:
    import httpx

    added: list[float] = []
    with _stack("kie", scale, 0.5, cert) as stack, httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.dev_api_key}"}, timeout=30,
            trust_env=False) as api:
        known: set[str] = set()
        arrivals: dict[str, float] = {}
        watching = threading.Event()

        def watch() -> None:  # when each notification arrived (50 Hz)
            while not watching.is_set():
                for record in list(receiver.received):
                    arrivals.setdefault(record["path"], time.time())
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for i in range(-1, jobs):  # one after the other: per job, not under load; #-1 warms up
            path = f"/bench/kie/{i}"
            created = api.post("/v1/jobs", json={**_request("kie"), "webhook_url": f"{receiver.url}{path}"})
            created.raise_for_status()
            task = _task_of(stack, "kie", known)
            deadline = time.monotonic() + 60
            while path not in arrivals and time.monotonic() < deadline:
                time.sleep(0.02)
            if path not in arrivals or task.finished_at is None:
                raise RuntimeError(f"job {i}: no notification within 60 s")
            copy = _copy_seconds(stack, task.output_url)
            total = arrivals[path] - task.finished_at
            if i >= 0:
                added.append(total - copy)
            print(f"kie job {i}: done -> notified {total:.3f} s, pure copy {copy:.3f} s, "
                  f"gateway {total - copy:.3f} s{' (warm-up, not counted)' if i < 0 else ''}")
        watching.set()
    return added


def polled(jobs: int, scale: float, cert: Path) -> list[float]:
    import httpx

    from motionrelay.infra.jobs_table import job_key

    fractions = []
    with _stack("vibedream", scale, JOB_SECONDS * scale / PHASES, cert) as stack, httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.dev_api_key}"}, timeout=30,
            trust_env=False) as api:
        ddb, known = stack.client("dynamodb"), set()
        table = next(t for t in ddb.list_tables()["TableNames"] if "idempotency" not in t.lower())
        created = [api.post("/v1/jobs", json=_request("vibedream")) for _ in range(jobs)]
        ids = [c.raise_for_status().json()["id"] for c in created]
        tasks = [_task_of(stack, "vibedream", known) for _ in ids]
        seen: dict[str, float] = {}
        deadline = time.monotonic() + JOB_SECONDS * scale * 4 + 30
        while len(seen) < len(ids) and time.monotonic() < deadline:
            for job_id in ids:
                if job_id in seen:
                    continue
                item = ddb.get_item(TableName=table, Key=job_key(job_id), ConsistentRead=True).get("Item", {})
                if item.get("phase", {}).get("S") not in (None, "pending", "queued", "running"):
                    seen[job_id] = time.time()
            time.sleep(0.02)
        polls = stack.sandbox.requests
        for job_id, task in zip(ids, sorted(tasks, key=lambda t: t.created_at), strict=True):
            if job_id not in seen or task.finished_at is None:
                raise RuntimeError(f"{job_id}: not seen done in time")
        # Jobs and tasks pair up by order of creation; each job's lag over its task's run time.
        for job_id, task in zip(ids, tasks, strict=True):
            run = task.finished_at - task.created_at
            lag = seen[job_id] - task.finished_at
            fractions.append(lag / run)
            print(f"vibedream job {job_id}: ran {run / scale:.0f} s (real speed), seen done "
                  f"{lag / scale:.1f} s later: {lag / run:.3f} of the run")
        status = sum(n for (p, e), n in polls.items() if p == "vibedream" and e != "files")
        print(f"vibedream: {status} API requests for {jobs} jobs ({status / jobs:.1f} per job)")
    return fractions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--polled-jobs", type=int, default=6)
    parser.add_argument("--scale", type=float, default=0.1)
    args = parser.parse_args()

    from tests.integration.receiver import Receiver, self_signed

    with tempfile.TemporaryDirectory() as scratch:
        cert, key = self_signed(Path(scratch))
        receiver = Receiver(cert, key)
        try:
            added = callbacks(args.jobs, args.scale, cert, receiver)
        finally:
            receiver.close()
        fractions = polled(args.polled_jobs, args.scale, cert)
    median = statistics.median(added)
    p95 = statistics.quantiles(added, n=20)[-1] if len(added) >= 2 else added[0]
    lag = statistics.median(fractions)
    print(f"callback (kie): gateway latency median {median:.3f} s, p95 {p95:.3f} s over {len(added)} jobs; "
          f"polled (vibedream): detection lag median {lag:.3f} of the run time (max {max(fractions):.3f})")
    print(f"RESULT latency {median:.3f} {p95:.3f} {lag:.3f}")


if __name__ == "__main__":
    main()
