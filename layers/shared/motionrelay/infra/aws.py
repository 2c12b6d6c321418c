"""Lazily created boto3 clients, shared per process.

boto3 costs ~200 ms to import and each client another ~50-150 ms to build, so nothing
here runs at import time: a handler pays for a client only when a request needs it.
`AWS_ENDPOINT_URL` (the local stack's moto server) is honoured by boto3 itself.
"""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()
_patched = False


def _patch_tracing() -> None:
    """X-Ray patching for botocore, done once and only when a client is first needed."""
    global _patched
    if _patched:
        return
    _patched = True
    from motionrelay.observability import tracer

    if not tracer.disabled:
        tracer.provider.patch(["botocore"])


def client(service: str) -> Any:
    existing = _clients.get(service)
    if existing is not None:
        return existing
    with _lock:
        if service not in _clients:
            _patch_tracing()
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=3,
                read_timeout=10,
                max_pool_connections=32,  # the poller writes from a pool of worker threads
                signature_version="s3v4" if service == "s3" else None,
            )
            _clients[service] = _session(boto3).client(service, config=config)
        return _clients[service]


_loader: Any = None


def _session(boto3: Any) -> Any:
    """A fresh session (credentials and endpoint read now), sharing one botocore data loader:
    the service models it parses from JSON are then loaded once per process, not per client."""
    import botocore.session

    global _loader
    core = botocore.session.get_session()
    if _loader is None:
        _loader = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints between moto instances)."""
    with _lock:
        _clients.clear()
