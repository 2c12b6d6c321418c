"""A minimal in-process Lambda runtime: load a handler by file path, invoke it with a context.

Each function's module is loaded from its folder under a unique module name, with the
folder put on `sys.path` as Lambda does with `/var/task`, so the real, unmodified handler
runs. One lock per function serialises its invocations: an execution environment serves
one event at a time, and the Powertools resolvers keep the current event on module state.

Also here: the events the AWS services would send (EventBridge scheduled event, SQS batch)
and how Lambda reads an SQS partial batch response.
"""

from __future__ import annotations

import base64
import importlib.util
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from motionrelay_local.apigw import ACCOUNT_ID
from motionrelay_local.template import FunctionSpec

log = logging.getLogger("motionrelay_local")

REGION = "us-east-1"


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    def __init__(self, spec: FunctionSpec, budget_seconds: float | None = None) -> None:
        self.function_name = spec.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.function_name}"
        self.memory_limit_in_mb = spec.memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + (spec.timeout if budget_seconds is None else budget_seconds)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LambdaFunction:
    """One function of the template, loaded once (the cold start) and invoked many times."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self._handler: Callable[[Any, LambdaContext], Any] | None = None
        self._lock = threading.Lock()
        # Unique per function: two functions may both have e.g. `app.py`.
        self.module_name = re.sub(r"\W", "_", f"_mrlocal_{spec.logical_id}_{spec.handler.rsplit('.', 1)[0]}")
        self.added_path: str | None = None

    def load(self) -> None:
        module_path, _, attr = self.spec.handler.rpartition(".")
        if not module_path or not attr:
            raise ValueError(
                f"{self.spec.logical_id}: Handler must be 'module.function', got {self.spec.handler!r}"
            )
        source = self.spec.code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
        if not source.is_file():
            raise FileNotFoundError(f"{self.spec.logical_id}: handler module {source} not found")
        folder = str(self.spec.code_dir)
        if folder not in sys.path:  # Lambda puts the function's code first on the path
            sys.path.insert(0, folder)
            self.added_path = folder
        spec = importlib.util.spec_from_file_location(self.module_name, source)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {source}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        handler = getattr(module, attr, None)
        if not callable(handler):
            raise AttributeError(f"{source} has no callable {attr!r}")
        self._handler = handler

    def unload(self) -> None:
        sys.modules.pop(self.module_name, None)
        if self.added_path and self.added_path in sys.path:
            sys.path.remove(self.added_path)
        self._handler = None

    def invoke(self, event: Any, *, budget_seconds: float | None = None) -> Any:
        """Run the handler once; exceptions propagate (the caller maps them as the service would)."""
        with self._lock:
            if self._handler is None:
                self.load()
            assert self._handler is not None
            context = LambdaContext(self.spec, budget_seconds)
            started = time.monotonic()
            try:
                return self._handler(event, context)
            finally:
                elapsed = time.monotonic() - started
                limit = self.spec.timeout if budget_seconds is None else budget_seconds
                if elapsed > limit:
                    # Lambda would have killed it; a thread cannot be, so say so loudly.
                    log.warning(
                        "%s ran %.1f s, past its %s s timeout (AWS would time it out)",
                        self.spec.logical_id,
                        elapsed,
                        limit,
                    )


def scheduled_event(rule_name: str, now: float | None = None) -> dict:
    """What an EventBridge schedule rule sends its Lambda target."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


def _message_attribute(value: dict) -> dict:
    # The Lambda event spells SQS attributes in camelCase, with binary values base64-encoded.
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return out


def sqs_event(messages: Iterable[dict], queue_arn: str) -> dict:
    """The event Lambda's SQS event source mapping builds from a ReceiveMessage batch."""
    records = []
    for message in messages:
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": {
                    name: _message_attribute(value)
                    for name, value in (message.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def failed_message_ids(result: Any, message_ids: list[str]) -> set[str]:
    """Which messages Lambda would return to the queue, given a ReportBatchItemFailures response.

    An empty or null `batchItemFailures` means all succeeded; an invalid response, or an
    `itemIdentifier` that is empty or not in the batch, fails the whole batch.
    """
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set(message_ids)
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(message_ids)
    failed: set[str] = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in message_ids:
            log.warning("invalid batchItemFailures entry %r: the whole batch fails", item)
            return set(message_ids)
        failed.add(ident)
    return failed
