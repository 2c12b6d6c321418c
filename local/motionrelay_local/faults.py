"""Fault injection for the local stack: `MOTIONRELAY_LOCAL_FAULTS`.

A comma list, every part optional:
- `crash=P`     each invocation is killed with probability P at a random I/O boundary (before or
                after one of its AWS calls or HTTP requests, or after its last one, when its
                answer is ready but not yet delivered): SIGKILL, no exception handler, no
                `finally`, as a Lambda timeout or out-of-memory kill. Its event is then retried
                as AWS would: SQS after the visibility timeout, the schedule on its next tick,
                and an API caller sees API Gateway's 500.
- `redeliver=P` each SQS message is delivered once more with probability P (SQS is
                at-least-once: the copy can come while the first is in flight, or after it).
- `overlap=N`   N extra poller invocations start on every schedule tick.
- `seed=S`      makes every choice repeatable.

Used by the project's tests and open to outside harnesses; `make dev` prints the active set.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

ENV_NAME = "MOTIONRELAY_LOCAL_FAULTS"


class FaultSpecError(ValueError):
    """MOTIONRELAY_LOCAL_FAULTS is malformed."""


def _probability(name: str, value: str) -> float:
    try:
        p = float(value)
    except ValueError:
        raise FaultSpecError(f"{ENV_NAME}: {name}={value!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise FaultSpecError(f"{ENV_NAME}: {name}={value} is not a probability between 0 and 1")
    return p


@dataclass
class Faults:
    crash: float = 0.0
    redeliver: float = 0.0
    overlap: int = 0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        values: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            name, sep, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not value:
                raise FaultSpecError(f"{ENV_NAME}: {part!r} is not name=value")
            if name in ("crash", "redeliver"):
                values[name] = _probability(name, value)
            elif name in ("overlap", "seed"):
                if not value.isdigit():
                    raise FaultSpecError(f"{ENV_NAME}: {name}={value!r} is not a whole number")
                values[name] = int(value)
            else:
                raise FaultSpecError(f"{ENV_NAME}: unknown fault {name!r} (crash, redeliver, overlap, seed)")
        return cls(**values)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        return bool(self.crash or self.redeliver or self.overlap)

    def describe(self) -> str:
        if not self.active:
            return "none"
        parts = [f"crash={self.crash:g}" if self.crash else "", f"redeliver={self.redeliver:g}" if
                 self.redeliver else "", f"overlap={self.overlap}" if self.overlap else "",
                 f"seed={self.seed}" if self.seed is not None else ""]
        return ",".join(p for p in parts if p)

    def crash_point(self, function: str, boundaries_seen: int) -> int | None:
        """None (no crash), or the 1-based I/O boundary at which this invocation dies; one past
        the most the function has passed so far means "after its last one"."""
        if not self.crash:
            return None
        with self._lock:
            if self._rng.random() >= self.crash:
                return None
            return self._rng.randint(1, max(1, boundaries_seen) + 1)

    def redelivery_delay(self, max_delay: float) -> float | None:
        """None, or after how many seconds (from the first delivery) a message comes again."""
        if not self.redeliver:
            return None
        with self._lock:
            if self._rng.random() >= self.redeliver:
                return None
            return self._rng.uniform(0.0, max_delay)
