"""Poller throughput: 5,000 due jobs, a provider answering in 100 ms, 50 requests in flight.

Runs the real poller (`motionrelay.poller.run`) against moto's DynamoDB server and the Kie
sandbox, each in its own process like the real services are. Every job is `running` at the
provider, so each one costs a status request and one conditional write.

Prints wall time / ideal (jobs x latency / concurrency) and items read / jobs due.
Last line: `RESULT poller <wall/ideal> <items read/jobs due>` (goal <= 1.25 and <= 1.05).

    .venv/bin/python bench/poller.py [--jobs 5000] [--latency 0.1] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT / "local")]

SANDBOX_KEY = "bench-kie-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), to show which side a run was bound by."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


SANDBOX_PROC = """
import sys, time, threading
from motionrelay_local.sandbox import Sandbox
from motionrelay_local.sandbox.jobs import SimJob
from motionrelay_local.sandbox.kie import STATES
jobs, latency, port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sb = Sandbox(port=port, api_keys={"kie": "%s"}).start()
sb.configure("kie", latency=latency)
# Tasks already running at the provider (no render: the benchmark is about polling).
for i in range(jobs):
    task_id = f"task_bench_{i:06d}"
    sb.tasks[task_id] = SimJob(task_id=task_id, provider="kie", request={}, state_names=STATES,
                               phase="running", extra={"param": "{}", "mode": "720p"})
print(sb.base_url("kie"), flush=True)
sys.stdin.read()
print(sum(n for (p, e), n in sb.requests.items() if p == "kie" and e == "recordInfo"), flush=True)
""".replace("%s", SANDBOX_KEY)


def seed(jobs: int) -> None:
    from motionrelay.infra.aws import client
    from motionrelay.infra.jobs_table import JOB_SK, poll_at
    from motionrelay_local import bootstrap

    bootstrap.create_all(os.environ["MOTIONRELAY_TABLE"], os.environ["MOTIONRELAY_BUCKET"],
                         "bench-transfer")
    ddb = client("dynamodb")
    now = time.time()
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
               for k, v in poll_at(job_id, now - 5).items()},
        })
    table = os.environ["MOTIONRELAY_TABLE"]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": it}} for it in items[start:start + 25]]
        ddb.batch_write_item(RequestItems={table: batch})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    moto_port, sandbox_port = free_port(), free_port()
    paths = [str(ROOT / "layers" / "shared"), str(ROOT / "local")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    sandbox = subprocess.Popen([sys.executable, "-c", SANDBOX_PROC, str(args.jobs), str(args.latency),
                                str(sandbox_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env)
    try:
        wait_for_port(moto_port)
        base_url = sandbox.stdout.readline().strip()
        os.environ.update({
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
            "MOTIONRELAY_TABLE": "bench-jobs", "MOTIONRELAY_BUCKET": "bench-media",
            "MOTIONRELAY_ROUTING": "kie", "MOTIONRELAY_KIE_API_KEY": SANDBOX_KEY,
            "MOTIONRELAY_KIE_BASE_URL": base_url, "MOTIONRELAY_LOCAL": "1",
            "MOTIONRELAY_PUBLIC_URL": "https://api.bench.example",
            "MOTIONRELAY_POLL_CONCURRENCY": f"kie={args.concurrency}",
            "MOTIONRELAY_TRANSFER_QUEUE_URL": "unused",
            "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_NAMESPACE": "bench",
        })
        t = time.perf_counter()
        seed(args.jobs)
        print(f"seeded {args.jobs} running jobs in {time.perf_counter() - t:.1f} s")

        from motionrelay import poller

        budget_ends = time.monotonic() + 60  # the PollerFunction timeout
        started = time.perf_counter()
        report = poller.run(lambda: int((budget_ends - time.monotonic()) * 1000))
        wall = time.perf_counter() - started

        sandbox.stdin.close()
        requests = int(sandbox.stdout.readline().strip() or 0)
        ideal = args.jobs * args.latency / args.concurrency
        ratio = wall / ideal
        read_ratio = report.items_read / max(report.due, 1)
        print(f"jobs due {report.due}, polled {report.polled}, status requests {requests}, "
              f"errors {report.errors}, passes {report.passes}")
        print(f"wall {wall:.2f} s, ideal {ideal:.2f} s ({args.jobs} x {args.latency * 1000:.0f} ms / "
              f"{args.concurrency}): ratio {ratio:.3f}")
        print(f"items read {report.items_read} / jobs due {report.due}: ratio {read_ratio:.3f}")
        print(f"RESULT poller {ratio:.3f} {read_ratio:.3f}")
        print(f"cpu seconds: poller {cpu_seconds(os.getpid()):.1f}, moto {cpu_seconds(moto.pid):.1f}, "
              f"sandbox {cpu_seconds(sandbox.pid):.1f}")
    finally:
        for proc in (sandbox, moto):
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
