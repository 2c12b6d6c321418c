"""Poller throughput: 5,000 due jobs, a provider answering in 100 ms, 50 requests in flight.

The real poller (`motionrelay.poller.run`) runs in this process against stand-ins that are not
CPU-bound, each in a process of its own (bench/stubs.py): a DynamoDB JSON-protocol server
answering after a fixed latency (5 ms) and Kie's status endpoint (100 ms). Every job is
`running` at the provider, so each one costs a status request and one conditional write.

Measured in one run, all as ratios:
- wall / ideal, ideal = jobs x provider latency / concurrency (goal <= 1.25);
- items read / jobs due (goal <= 1.05), and the Scans the DynamoDB stand-in saw (goal 0);
- cpu / floor: this process's CPU seconds per poll (time.process_time) over a bare loop's
  doing the same botocore UpdateItem (the poller's own, captured) and the same httpx async
  GET, with the same concurrency and the same stubs, measured right after (goal <= 1.3);
- polls/s with 1, 2 and 4 shards: as many poller processes, each polling only its shards
  (`poller.run(shards=...)`), over the same jobs (on 2 cores expect ~2x at most).
When wall / ideal misses its goal a cProfile of a smaller run (every thread, top own time)
says where the CPU goes.

Last line: `RESULT poller <wall/ideal> <items read/jobs due> <cpu/floor>`.

    .venv/bin/python bench/poller.py [--jobs 5000] [--latency 0.1] [--db-latency 0.005] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from harness import LOCAL_AWS, PATHS, ROOT, child_env, free_port

sys.path[:0] = PATHS

SANDBOX_KEY = "bench-kie-key"
SHARDS = 4
WALL_GOAL = 1.25


def start_stub(kind: str, latency: float) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "stubs.py"), kind, str(port), str(latency)],
                            stdout=subprocess.PIPE, text=True, env=child_env())
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)  # listening
    return proc, port


def settings_env(dynamo_port: int, kie_port: int, concurrency: int) -> dict[str, str]:
    return {
        **LOCAL_AWS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{dynamo_port}",
        "MOTIONRELAY_TABLE": "bench-jobs", "MOTIONRELAY_BUCKET": "bench-media",
        "MOTIONRELAY_ROUTING": "kie", "MOTIONRELAY_KIE_API_KEY": SANDBOX_KEY,
        "MOTIONRELAY_KIE_BASE_URL": f"http://127.0.0.1:{kie_port}", "MOTIONRELAY_LOCAL": "1",
        "MOTIONRELAY_PUBLIC_URL": "https://api.bench.example", "MOTIONRELAY_DUE_SHARDS": str(SHARDS),
        "MOTIONRELAY_POLL_CONCURRENCY": f"kie={concurrency}", "MOTIONRELAY_TRANSFER_QUEUE_URL": "unused",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "bench",
    }


def seed(jobs: int) -> None:
    """`jobs` running Kie jobs, all due now, spread over the due index's shards."""
    from motionrelay.infra.aws import client
    from motionrelay.infra.jobs_table import JOB_SK, JobStore

    store, ddb, now = JobStore(), client("dynamodb"), time.time()
    items = []
    for i in range(jobs):
        job_id = f"job_bench{i:06d}"
        items.append({
            "pk": {"S": f"JOB#{job_id}"}, "sk": {"S": JOB_SK}, "id": {"S": job_id},
            "tenant_id": {"S": "bench"}, "phase": {"S": "running"}, "provider": {"S": "kie"},
            "provider_task_id": {"S": f"task_bench_{i:06d}"}, "deadline_at": {"N": str(int(now) + 3600)},
            "poll_count": {"N": "0"}, "submitted_at": {"N": str(int(now) - 30)},
            "callback_expected": {"BOOL": True},  # Kie calls back: one poll each, as a safety net
            "created_at": {"S": "2026-11-21T00:00:00.000Z"}, "updated_at": {"S": "2026-11-21T00:00:00.000Z"},
            "request": {"M": {}},
            **{k: ({"S": v} if isinstance(v, str) else {"N": str(v)})
               for k, v in store.poll_at(job_id, now - 5).items()},
        })
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": it}} for it in items[start:start + 25]]
        ddb.batch_write_item(RequestItems={"bench-jobs": batch})


def stub_stats(port: int) -> dict:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"{}", method="POST",
                                     headers={"X-Amz-Target": "DynamoDB_20120810.Stats"})
    with urllib.request.urlopen(request) as response:  # noqa: S310 - the stub's loopback URL
        return json.loads(response.read())


def budget(seconds: float):
    ends = time.monotonic() + seconds
    return lambda: int((ends - time.monotonic()) * 1000)


def capture_update_item() -> dict:
    """The first UpdateItem the poller sends, as botocore was given it."""
    from motionrelay.infra.aws import client

    captured: dict = {}

    def keep(params: dict, **_: object) -> None:
        if not captured:
            captured.update(params)

    client("dynamodb").meta.events.register("provide-client-params.dynamodb.UpdateItem", keep)
    return captured


async def floor_loop(jobs: int, concurrency: int, kie_url: str, update: dict) -> None:
    """The least any poller can do per job: the same httpx async GET (same pools, same
    concurrency) and the same botocore UpdateItem from a worker thread."""
    from motionrelay.infra.aws import client
    from motionrelay.infra.http_clients import async_provider_client
    from motionrelay.infra.jobs_table import job_key
    from motionrelay.poller import CONNECTIONS_PER_CLIENT, DB_WORKERS, POLL_TIMEOUT_SECONDS

    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=DB_WORKERS)
    loop.set_default_executor(executor)
    clients = [async_provider_client(POLL_TIMEOUT_SECONDS, max_connections=CONNECTIONS_PER_CLIENT)
               for _ in range(-(-concurrency // CONNECTIONS_PER_CLIENT))]
    slots = asyncio.Semaphore(concurrency)
    ddb = client("dynamodb")

    async def one(i: int) -> None:
        async with slots:
            response = await clients[i % len(clients)].get(
                f"{kie_url}/api/v1/jobs/recordInfo", params={"taskId": f"task_bench_{i:06d}"},
                headers={"Authorization": f"Bearer {SANDBOX_KEY}"})
            response.json()
        params = {**update, "Key": job_key(f"job_bench{i:06d}")}
        await loop.run_in_executor(None, partial(ddb.update_item, **params))

    try:
        await asyncio.gather(*(one(i) for i in range(jobs)))
    finally:
        for c in clients:
            await c.aclose()
        executor.shutdown(wait=True)


class ThreadProfiles:
    """cProfile in every thread (the event loop and the DynamoDB workers), merged, timing
    each thread by its own CPU time."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []

    def _start_here(self, *_: object) -> None:
        profile = cProfile.Profile(time.thread_time)  # CPU, not time spent blocked
        self.profiles.append(profile)
        profile.enable()

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start_here)
        self._start_here()
        return self

    def __exit__(self, *_: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        for profile in self.profiles:
            profile.disable()

    def print_top(self, n: int = 25) -> None:
        stats = pstats.Stats(*self.profiles)
        stats.sort_stats("tottime").print_stats(n)


SHARD_CHILD = """
import json, sys, time
shards = [int(s) for s in sys.argv[1].split(",")]
from motionrelay import poller
from motionrelay.infra.aws import client
from motionrelay.infra.jobs_table import job_key
client("dynamodb").get_item(TableName="bench-jobs", Key=job_key("job_warmup"))  # the client, made
sys.stdin.readline()  # go
cpu, started = time.process_time(), time.perf_counter()
ends = time.monotonic() + 60
report = poller.run(lambda: int((ends - time.monotonic()) * 1000), shards=shards)
print(json.dumps({"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                  "polled": report.polled}), flush=True)
"""


def shard_throughput(jobs: int, env: dict[str, str]) -> dict[int, float]:
    """polls/s with 1, 2 and 4 poller processes splitting the 4 shards between them."""
    out = {}
    for processes in (1, 2, 4):
        seed(jobs)
        groups = [",".join(str(k) for k in range(SHARDS) if k % processes == p) for p in range(processes)]
        children = [subprocess.Popen([sys.executable, "-c", SHARD_CHILD, group], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=child_env(**env))
                    for group in groups]
        time.sleep(1.5)  # imports done in every child before the start
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = [json.loads(child.communicate()[0].strip().splitlines()[-1]) for child in children]
        wall = time.perf_counter() - started
        polled = sum(r["polled"] for r in reports)
        out[processes] = polled / wall
        cpu = sum(r["cpu"] for r in reports) / max(polled, 1)
        print(f"{processes} shard process(es) over {SHARDS} shards: {polled} polls in {wall:.2f} s = "
              f"{polled / wall:.0f} polls/s ({cpu * 1000:.2f} ms CPU per poll)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--db-latency", type=float, default=0.005)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--shard-jobs", type=int, default=2000)
    parser.add_argument("--profile-jobs", type=int, default=1000)
    args = parser.parse_args()

    dynamo, dynamo_port = start_stub("dynamo", args.db_latency)
    kie, kie_port = start_stub("kie", args.latency)
    env = settings_env(dynamo_port, kie_port, args.concurrency)
    os.environ.update(env)
    try:
        seed(args.jobs)
        from motionrelay import poller
        from motionrelay.infra.aws import client
        from motionrelay.infra.jobs_table import job_key

        client("dynamodb").get_item(TableName="bench-jobs", Key=job_key("job_warmup"))  # client made
        update = capture_update_item()
        before = stub_stats(dynamo_port)
        cpu, started = time.process_time(), time.perf_counter()
        report = poller.run(budget(60))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = stub_stats(dynamo_port)

        floor_cpu, floor_started = time.process_time(), time.perf_counter()
        asyncio.run(floor_loop(args.jobs, args.concurrency, env["MOTIONRELAY_KIE_BASE_URL"], update))
        floor_wall, floor_cpu = time.perf_counter() - floor_started, time.process_time() - floor_cpu

        ideal = args.jobs * args.latency / args.concurrency
        ratio = wall / ideal
        read_ratio = report.items_read / max(report.due, 1)
        scans = after["counts"].get("Scan", 0) - before["counts"].get("Scan", 0)
        per_poll, floor_per_poll = cpu / max(report.polled, 1), floor_cpu / args.jobs
        cpu_ratio = per_poll / floor_per_poll
        ops = {k: v - before["counts"].get(k, 0) for k, v in after["counts"].items() if k != "Stats"}
        print(f"jobs due {report.due}, polled {report.polled}, errors {report.errors}, "
              f"passes {report.passes}; DynamoDB calls {ops}")
        print(f"wall {wall:.2f} s, ideal {ideal:.2f} s ({args.jobs} x {args.latency * 1000:.0f} ms / "
              f"{args.concurrency}): ratio {ratio:.3f}; the floor loop's wall / ideal "
              f"{floor_wall / ideal:.3f}")
        print(f"items read {report.items_read} / jobs due {report.due}: ratio {read_ratio:.3f}; "
              f"Scans {scans}")
        print(f"CPU per poll {per_poll * 1000:.2f} ms, floor {floor_per_poll * 1000:.2f} ms: "
              f"ratio {cpu_ratio:.3f}; one core sustains ~{1 / per_poll:.0f} polls/s, so wall / ideal >= "
              f"{per_poll * args.concurrency / args.latency:.2f} at this concurrency and latency")

        shard_throughput(args.shard_jobs, env)

        if ratio > WALL_GOAL:
            print(f"\nwall / ideal above {WALL_GOAL}: the run is CPU-bound (one core, the GIL). "
                  f"cProfile of {args.profile_jobs} polls, every thread, top own time:")
            seed(args.profile_jobs)
            with ThreadProfiles() as profiles:
                poller.run(budget(60))
            profiles.print_top()
        print(f"RESULT poller {ratio:.3f} {read_ratio:.3f} {cpu_ratio:.3f}")
    finally:
        for proc in (dynamo, kie):
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
