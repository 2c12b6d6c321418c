"""Starting the integration modules' stacks, and what their functions' IAM policies saw."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from motionrelay_local.stack import LocalStack

FAST = {"poll_interval": 0.5, "sandbox_state_seconds": 0.2}
_seen_calls: dict[str, set[tuple[str, str]]] = {}
_policies: dict[str, list] = {}


def start_stack(**options: Any) -> Iterator[LocalStack]:
    """A module's stack: FAST timings unless overridden; its IAM calls are kept for the report."""
    with LocalStack(port=0, **{**FAST, **options}) as running:
        yield running
        for function, calls in running.iam_calls().items():
            _seen_calls.setdefault(function, set()).update(calls)
        _policies.update(running.policies())


def policies_seen() -> tuple[dict[str, list], dict[str, set[tuple[str, str]]]]:
    return dict(_policies), {k: set(v) for k, v in _seen_calls.items()}


def export_seen() -> dict[str, Any]:
    """What this process saw, as plain data (an xdist worker sends it to the controller)."""
    import dataclasses
    import json

    # JSON round trip: the template parser's str subclasses do not cross to the controller.
    seen = {"policies": {fn: [dataclasses.asdict(st) for st in sts] for fn, sts in _policies.items()},
            "calls": {fn: sorted(calls) for fn, calls in _seen_calls.items()}}
    return json.loads(json.dumps(seen))


def merge_seen(data: dict[str, Any]) -> None:
    """Add what a worker saw to this process's record (the controller, for the report)."""
    from motionrelay_local.iam import Statement

    for fn, sts in (data.get("policies") or {}).items():
        _policies[fn] = [Statement(**{k: tuple(v) if isinstance(v, list) else v for k, v in st.items()})
                         for st in sts]
    for fn, calls in (data.get("calls") or {}).items():
        _seen_calls.setdefault(fn, set()).update(tuple(c) for c in calls)
