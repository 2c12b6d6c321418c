"""Provider requests per job: one job that runs 120 s at the provider, end to end through the
local stack (API, poller, webhook, transfer) against the sandbox.

Time is compressed: the sandbox job and the gateway's poll schedule are both scaled by the
same factor (MOTIONRELAY_POLL_TIME_SCALE), so the number of requests is what a real 120 s
job costs while the run takes seconds. Counted: API requests to the provider (submit, status
polls, callback re-fetches); the output download from the provider's file host is shown apart.

Last line: `RESULT requests_per_job <polling> <callback>` (goal <= 8 and <= 2).

    .venv/bin/python bench/requests_per_job.py [--scale 0.1] [--polling vibedream] [--callback kie]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT / "local")]

JOB_SECONDS = 120.0
PHASES = 3  # the sandbox walks pending -> queued -> running, each lasting state_seconds


def one_job(provider: str, scale: float) -> tuple[int, int, float]:
    """(API requests, file downloads, seconds) for one job routed to `provider`."""
    import httpx

    from motionrelay_local import demo
    from motionrelay_local.stack import LocalStack

    state_seconds = JOB_SECONDS * scale / PHASES
    stack_options = {"poll_interval": 0.2, "sandbox_state_seconds": state_seconds, "routing": provider,
                     "environ": {"MOTIONRELAY_POLL_TIME_SCALE": str(scale)},
                     "extra_env": {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}}
    with LocalStack(port=0, **stack_options) as stack:
        caps = importlib.import_module(f"motionrelay.providers.{provider}").CAPABILITIES
        request = demo.sample_request(provider)
        request["quality"] = "pro" if "pro" in caps.qualities else "std"
        if not caps.prompt:
            request.pop("prompt", None)
        headers = {"Authorization": f"Bearer {stack.dev_api_key}"}
        with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30, trust_env=False) as api:
            started = time.monotonic()
            created = api.post("/v1/jobs", json=request)
            created.raise_for_status()
            job = created.json()
            while job["status"] not in ("succeeded", "failed", "canceled"):
                if time.monotonic() - started > JOB_SECONDS * scale * 4 + 30:
                    raise RuntimeError(f"job did not finish: {job}")
                time.sleep(0.1)
                job = api.get(f"/v1/jobs/{job['id']}").json()
            elapsed = time.monotonic() - started
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['status']}: {job.get('error')}")
        counts = {endpoint: n for (p, endpoint), n in stack.sandbox.requests.items() if p == provider}
    downloads = counts.pop("files", 0)
    print(f"{provider}: {sum(counts.values())} API requests {dict(sorted(counts.items()))}, "
          f"{downloads} output download(s); job took {elapsed / scale:.0f} s at real speed "
          f"({elapsed:.1f} s compressed)")
    return sum(counts.values()), downloads, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="time compression (0.1: 120 s take 12 s)")
    parser.add_argument("--polling", default="vibedream", help="a provider without callbacks")
    parser.add_argument("--callback", default="kie", help="a provider that calls back")
    args = parser.parse_args()
    polling = one_job(args.polling, args.scale)[0]
    callback = one_job(args.callback, args.scale)[0]
    print(f"RESULT requests_per_job {polling} {callback}")


if __name__ == "__main__":
    main()
