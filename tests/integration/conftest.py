"""One LocalStack for the whole integration module: moto, the sandbox and the real handlers
on random loopback ports, with fast timings (poller every 0.5 s, sandbox states of 0.2 s)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from motionrelay_local import demo
from motionrelay_local.stack import LocalStack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, poll_interval=0.5, sandbox_state_seconds=0.2) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    """An authenticated client of the local API (the dev key)."""
    headers = {"Authorization": f"Bearer {stack.dev_api_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def sample_request() -> dict:
    """The demo's request: samples/character.png and samples/motion.mp4 as data URIs."""
    return demo.sample_request()
