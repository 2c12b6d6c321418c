"""Make moto's DynamoDB writes atomic, as DynamoDB's are.

moto checks a ConditionExpression and then writes without a lock, so two threads can both
pass the same condition. Real DynamoDB evaluates the condition and writes atomically per
item, and motionrelay's state machine relies on that (two pollers, or a poller and a
callback, racing on one job). The local stack and the tests serialise moto's write paths.
"""

from __future__ import annotations

import functools
import threading

_LOCK = threading.RLock()
# Queries and scans too: they iterate the table's dicts, which a concurrent write changes
# ("dictionary changed size during iteration" in moto, under load).
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "query", "scan")


def make_dynamodb_writes_atomic() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_motionrelay_atomic", False):
            continue

        def locked(*args, __method=method, **kwargs):
            with _LOCK:
                return __method(*args, **kwargs)

        functools.update_wrapper(locked, method)
        locked._motionrelay_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)
