"""What the benchmarks share: free ports, waiting for a server, the package paths."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT / "layers" / "shared"), str(ROOT / "local")]


# moto and the stubs accept any credentials; these keep the real ones out of the benchmarks.
LOCAL_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
             "AWS_DEFAULT_REGION": "us-east-1"}


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark's child process: this one's, the package on its path,
    local AWS credentials."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(PATHS), **LOCAL_AWS, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")
