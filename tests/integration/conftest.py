"""One LocalStack per integration module: moto, the sandbox and the real handlers (each
function in processes of its own, its IAM policy enforced) on random loopback ports, with
fast timings (poller every 0.5 s, sandbox states of 0.2 s).

Every test that uses a stack also asserts, when it ends, that no function was refused an
AWS call by its template policy: a refusal the code swallows (a best-effort write, a
fallback) would otherwise pass here and fail in AWS. At the end of the session the grants
that no test used are reported (least privilege: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.receiver import Receiver, self_signed
from tests.integration.stacks import start_stack

from motionrelay_local import demo
from motionrelay_local.stack import LocalStack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    yield from start_stack(routing="kie")


@pytest.fixture(autouse=True)
def _no_iam_denials(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "stack" in request.fixturenames:
        running: LocalStack = request.getfixturevalue("stack")
        denied = running.iam_denials()
        assert not denied, f"template.yaml does not allow these calls the code made: {denied}"


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


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 (PEM files): the receiver's, trusted by the
    functions of a stack started with extra_env={"SSL_CERT_FILE": ...}."""
    return self_signed(tmp_path_factory.mktemp("receiver"))


@pytest.fixture(scope="module")
def receiver(certificate: tuple[Path, Path]) -> Iterator[Receiver]:
    running = Receiver(*certificate)
    try:
        yield running
    finally:
        running.close()
