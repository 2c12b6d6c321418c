"""Base class for one simulated provider, and the shared context the server hands it.

A provider module (kie.py, later novita.py, ...) subclasses `Provider`, declares its
routes, answers requests in its own wire format and describes jobs to the shared
`JobRunner`; knobs common to every provider live here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .wire import Request, Response

if TYPE_CHECKING:
    from .jobs import JobRunner, SimJob


@dataclass
class SandboxContext:
    """What provider modules may use from the running sandbox."""

    root_url: Callable[[], str]
    workdir: Path
    jobs: JobRunner
    tasks: dict[str, SimJob]
    callbacks: list[dict[str, Any]]
    stopping: threading.Event
    lock: threading.Lock = field(default_factory=threading.Lock)

    def base_url(self, provider: str) -> str:
        return f"{self.root_url()}/{provider}"

    def files_dir(self, provider: str) -> Path:
        path = self.workdir / "files" / provider
        path.mkdir(parents=True, exist_ok=True)
        return path

    def record_callback(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.callbacks.append(entry)


def _non_negative(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError("must be a non-negative number")
    return float(value)


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be null or an integer")
    return value


def _optional_positive_int(value: Any) -> int | None:
    value = _optional_int(value)
    if value is not None and value < 1:
        raise ValueError("must be null or a positive integer")
    return value


def _optional_str(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError("must be null or a non-empty string")
    return value


def _delays(value: Any) -> list[float]:
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of non-negative numbers")
    return [_non_negative(v) for v in value]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


# name -> (default, validator)
COMMON_KNOBS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "latency": (0.0, _non_negative),  # seconds added to every API response
    "fail_submit": (None, _optional_int),  # provider error code the submit answers with
    "fail_submit_times": (None, _optional_positive_int),  # None = every submit, N = next N only
    "fail_task": (None, _optional_str),  # failure message: accepted tasks end failed
    "callbacks": (True, _bool),  # deliver callbacks to the caller's URL
    "state_seconds": (0.5, _non_negative),  # minimum time spent in each non-final state
    "callback_timeout": (15.0, _non_negative),  # seconds the receiver has to answer
    "callback_retry_delays": ([], _delays),  # one retry per entry, waiting that long first
}


def _copy(config: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, list) else v for k, v in config.items()}


class Provider:
    """One simulated provider API mounted at `{root}/{name}`."""

    name: ClassVar[str]
    default_api_key: ClassVar[str]
    extra_knobs: ClassVar[dict[str, tuple[Any, Callable[[Any], Any]]]] = {}
    knob_defaults: ClassVar[dict[str, Any]] = {}  # provider-specific defaults of common knobs

    def __init__(self, ctx: SandboxContext, api_key: str | None = None) -> None:
        self.ctx = ctx
        self.api_key = api_key or self.default_api_key
        self._knobs = {**COMMON_KNOBS, **self.extra_knobs}
        self._config = {k: default for k, (default, _) in self._knobs.items()} | self.knob_defaults
        self._config_lock = threading.Lock()

    def credentials(self) -> dict[str, str]:
        """What a client of this simulated provider configures (its secret's fields)."""
        return {"API_KEY": self.api_key}

    # --------------------------------------------------------------- knobs

    def config(self) -> dict[str, Any]:
        with self._config_lock:
            return _copy(self._config)

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Validate and apply knobs atomically; raises ValueError naming the bad knob."""
        checked = {}
        for key, value in knobs.items():
            if key not in self._knobs:
                raise ValueError(f"unknown knob {key!r} (known: {', '.join(sorted(self._knobs))})")
            try:
                checked[key] = self._knobs[key][1](value)
            except ValueError as exc:
                raise ValueError(f"knob {key!r} {exc}") from None
        with self._config_lock:
            self._config.update(checked)
            return _copy(self._config)

    def take_submit_failure(self) -> int | None:
        """The error code this submit must fail with, consuming one `fail_submit_times`."""
        with self._config_lock:
            code = self._config["fail_submit"]
            if code is None:
                return None
            times = self._config["fail_submit_times"]
            if times is not None:
                if times <= 1:
                    self._config["fail_submit"] = self._config["fail_submit_times"] = None
                else:
                    self._config["fail_submit_times"] = times - 1
            return code

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        """The endpoint name for this request (used for counting), or None if unknown."""
        raise NotImplementedError

    def dispatch(self, endpoint: str, req: Request) -> Response:
        raise NotImplementedError

    def not_found(self, req: Request) -> Response:
        return Response.json({"error": "not found"}, status=404)
