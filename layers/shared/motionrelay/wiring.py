"""The collaborators a handler builds once, at module level (Lambda's init phase), and passes
to the use cases: the table, the clock and the provider registry. Nothing here opens a
connection: clients are made on first use (cold starts), so building this costs nothing.

Tests build their own `Collaborators` (an in-memory table, a fixed clock, fake adapters)
instead of patching module globals."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from motionrelay.infra.jobs_table import JobStore


def _registry_adapter(name: str) -> Any:
    from motionrelay.registry import get_adapter

    return get_adapter(name)


@dataclass(frozen=True)
class Collaborators:
    store: JobStore
    clock: Callable[[], float] = time.time
    adapters: Callable[[str], Any] = field(default=_registry_adapter)


def build() -> Collaborators:
    from motionrelay.infra.jobs_table import JobStore

    return Collaborators(store=JobStore())
