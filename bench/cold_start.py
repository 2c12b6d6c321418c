"""Cold-start cost of each function's handler module, relative to a bare `import boto3`.

Each sample is a fresh Python process that times only the import (+ module-level init) of
the handler, in a Lambda-like environment (LAMBDA_TASK_ROOT set, so Powertools' Tracer is
active as in AWS). Interpreter start-up is excluded from both sides. Ratios are taken from
medians measured in the same run, so a busy machine slows both sides alike.

Last line: `RESULT cold_start <worst ratio>` (goal <= 1.5).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {
    "api": "api_handler",
    "webhook": "webhook_handler",
    "poller": "poller_handler",
    "tick": "tick_handler",
    "transfer": "transfer_handler",
    "notifier": "notifier_handler",
}
SAMPLES = int(os.environ.get("COLD_START_SAMPLES", "9"))

TIMER = """
import sys, time
sys.path[:0] = {paths!r}
start = time.perf_counter()
import {module}
print(time.perf_counter() - start)
"""


def lambda_env(function_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "MOTIONRELAY_"))}
    env.update({
        "LAMBDA_TASK_ROOT": function_dir,
        "AWS_LAMBDA_FUNCTION_NAME": "motionrelay-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "motionrelay",
        "POWERTOOLS_METRICS_NAMESPACE": "MotionRelay",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def sample(module: str, paths: list[str], env: dict[str, str]) -> float:
    code = TIMER.format(paths=paths, module=module)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    layer = str(ROOT / "layers" / "shared")
    # Warm the OS file cache once so the first sample is not an outlier on either side.
    for name, module in FUNCTIONS.items():
        sample(module, [layer, str(ROOT / "functions" / name)], lambda_env(str(ROOT / "functions" / name)))
    baseline_env = lambda_env(str(ROOT))
    measurements: dict[str, list[float]] = {"boto3": []}
    for name in FUNCTIONS:
        measurements[name] = []
    # Interleave the samples so load changes affect every series alike.
    for _ in range(SAMPLES):
        measurements["boto3"].append(sample("boto3", [], baseline_env))
        for name, module in FUNCTIONS.items():
            function_dir = str(ROOT / "functions" / name)
            measurements[name].append(sample(module, [layer, function_dir], lambda_env(function_dir)))
    base = statistics.median(measurements["boto3"])
    print(f"import boto3 (baseline): median {base * 1000:.1f} ms over {SAMPLES} fresh processes")
    worst = 0.0
    for name in FUNCTIONS:
        median = statistics.median(measurements[name])
        ratio = median / base
        worst = max(worst, ratio)
        print(f"{name:9s} median {median * 1000:7.1f} ms   ratio {ratio:.2f}")
    print(f"RESULT cold_start {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
