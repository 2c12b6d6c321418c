"""The local Lambda runtime: every function runs in execution environments of its own.

An execution environment is a fresh interpreter (`worker.py`) started with exactly the
function's environment from `template.yaml`, which imports the function's handler once (the
cold start) and then serves one invocation at a time, like a warm Lambda. A function has as
many environments as it has invocations in flight (up to its concurrency), reuses idle ones,
and replaces one that crashed, timed out or outgrew its memory. Invocations are killed at
the function's timeout (or the budget the caller gives), as Lambda kills them.

Faults (`faults.py`) choose, per invocation, whether the environment is killed and at which
I/O boundary. IAM decisions made inside the environment come back with each result and go
to the stack's recorder.

Also here: the events the AWS services would send (EventBridge scheduled event, SQS batch)
and how Lambda reads an SQS partial batch response.
"""

from __future__ import annotations

import base64
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from motionrelay_local.apigw import ACCOUNT_ID
from motionrelay_local.template import FunctionSpec

log = logging.getLogger("motionrelay_local")

REGION = "us-east-1"
LOCAL_DIR = Path(__file__).resolve().parents[1]  # local/: the worker's own package
INIT_TIMEOUT_SECONDS = 30.0  # Lambda allows 10 s of init; a loaded machine needs more here
KILL_GRACE_SECONDS = 0.25  # how far past its deadline an invocation may run before the kill
MEMORY_CHECK_SECONDS = 0.2


class FunctionError(Exception):
    """An invocation that did not return a result: what Lambda reports as a function error."""

    def __init__(self, function: str, error: dict) -> None:
        self.function = function
        self.error = error
        super().__init__(f"{function}: {error.get('errorType')}: {error.get('errorMessage')}")


class FunctionCrashed(FunctionError):
    """The environment died (killed by a fault, out of memory, exited): Runtime.ExitError."""


class FunctionTimeout(FunctionError):
    """The invocation ran past its deadline and was killed."""


@dataclass(frozen=True)
class FunctionConfig:
    """Everything needed to start one of a function's execution environments."""

    spec: FunctionSpec
    environment: dict[str, str]  # exactly what the function's process gets
    statements: list[dict]  # iam.Statement fields, the role's whole policy
    principal: str  # the assumed-role ARN errors name
    secret_arns: dict[str, str] = field(default_factory=dict)  # secret name -> ARN (for IAM resources)
    layer_dirs: tuple[str, ...] = ()
    max_concurrency: int = 10
    python: str = sys.executable


def lambda_context_fields(spec: FunctionSpec) -> dict[str, Any]:
    return {
        "function_name": spec.function_name,
        "function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.function_name}",
        "memory": spec.memory,
        "log_group_name": f"/aws/lambda/{spec.function_name}",
        "log_stream_name": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
    }


# `make dev`'s quiet mode (devlog.py) takes every line instead: (function, "stdout"|"stderr", line).
OUTPUT_SINK: Callable[[str, str, str], None] | None = None


def _forward(stream: Any, name: str, prefix: str, function: str = "") -> None:
    """Copy a worker's output to this process's current stdout/stderr, line by line (so a test's
    capture or the demo's log file gets it, as CloudWatch would), or to OUTPUT_SINK when set."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        sink = OUTPUT_SINK
        if sink is not None:
            sink(function, name, line)
            continue
        target = getattr(sys, name)
        try:
            target.write(prefix + line)
            target.flush()
        except (ValueError, OSError):  # a closed capture stream: drop the line
            pass
    stream.close()


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ExecutionEnvironment:
    """One worker process of a function."""

    def __init__(self, config: FunctionConfig) -> None:
        self.config = config
        self.spec = config.spec
        parent, child = socket.socketpair()
        env = dict(config.environment)
        env["PYTHONPATH"] = str(LOCAL_DIR)  # the worker's own code; it leaves the path before the handler
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [config.python, "-m", "motionrelay_local.worker", str(child.fileno())],
            env=env, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(self.spec.code_dir),
        )
        child.close()
        self.conn = Connection(parent.detach())
        for stream, name, prefix in ((self.process.stdout, "stdout", ""),
                                     (self.process.stderr, "stderr", f"[{self.spec.logical_id}] ")):
            threading.Thread(target=_forward, args=(stream, name, prefix, self.spec.logical_id), daemon=True,
                             name=f"mrlocal-out-{self.spec.logical_id}").start()
        self.killed_for = ""
        self.dead = False
        self.init_ms = 0
        self._init()

    def _init(self) -> None:
        self.conn.send({
            "op": "init", "code_dir": str(self.spec.code_dir), "handler": self.spec.handler,
            "layer_dirs": list(self.config.layer_dirs), "local_dir": str(LOCAL_DIR),
            "statements": self.config.statements, "principal": self.config.principal,
            "region": REGION, "secret_arns": self.config.secret_arns,
            "function": lambda_context_fields(self.spec),
        })
        reply = self._receive(time.time() + INIT_TIMEOUT_SECONDS)
        if reply is None or reply.get("op") != "ready":
            self.kill()
            error = (reply or {}).get("error") or {"errorType": "Runtime.ExitError",
                                                   "errorMessage": "the environment died during init"}
            raise FunctionError(self.spec.logical_id, {**error, "errorType": f"Runtime.InitError "
                                                                             f"({error.get('errorType')})"})
        self.init_ms = reply.get("init_ms", 0)

    def _receive(self, deadline: float) -> dict | None:
        """The next message, or None if the worker died or the deadline passed (it is then killed)."""
        memory = self.spec.memory
        while True:
            left = deadline - time.time()
            if left <= 0:
                self.killed_for = "timeout"
                self.kill()
                return None
            try:
                if self.conn.poll(min(left, MEMORY_CHECK_SECONDS)):
                    return self.conn.recv()
            except (EOFError, OSError):
                self.dead = True
                return None
            if self.process.poll() is not None:
                self.dead = True
                return None
            if _rss_mb(self.process.pid) > memory:
                self.killed_for = "memory"
                self.kill()
                return None

    def invoke(self, event: Any, deadline: float, crash_at: int | None) -> dict:
        request_id = str(uuid.uuid4())
        try:
            self.conn.send({"op": "invoke", "event": event, "request_id": request_id, "deadline": deadline,
                            "crash_at": crash_at})
        except OSError:
            self.dead = True
            raise FunctionCrashed(self.spec.logical_id, {"errorType": "Runtime.ExitError",
                                                         "errorMessage": "the environment is gone"}) from None
        reply = self._receive(deadline + KILL_GRACE_SECONDS)
        if reply is not None:
            return reply
        name = self.spec.logical_id
        if self.killed_for == "timeout":
            raise FunctionTimeout(name, {"errorType": "Sandbox.Timedout",
                                         "errorMessage": f"{request_id} Task timed out"})
        if self.killed_for == "memory":
            raise FunctionCrashed(name, {"errorType": "Runtime.OutOfMemory",
                                         "errorMessage": "Runtime exited with error: signal: killed "
                                                         f"(over {self.spec.memory} MB)"})
        code = self.process.wait()
        how = f"signal {-code}" if code < 0 else f"code {code}"
        raise FunctionCrashed(name, {"errorType": "Runtime.ExitError",
                                     "errorMessage": f"RequestId: {request_id} Error: Runtime exited "
                                                     f"with {how}"})

    def kill(self) -> None:
        self.dead = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("%s: a worker did not die", self.spec.logical_id)
        self.conn.close()

    def stop(self) -> None:
        """A graceful end (the stack stops): close the channel, then make sure it is gone."""
        try:
            self.conn.send({"op": "shutdown"})
        except OSError:
            pass
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


class LambdaFunction:
    """One function of the template: a pool of execution environments, invoked concurrently."""

    def __init__(self, config: FunctionConfig, *, faults: Any = None,
                 on_decisions: Callable[[str, list], None] | None = None) -> None:
        self.config = config
        self.spec = config.spec
        self.faults = faults
        self.on_decisions = on_decisions
        self._idle: list[ExecutionEnvironment] = []
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False
        self.max_boundaries = 0  # the most I/O boundaries one invocation has passed: where crashes may land
        self.cold_starts = 0
        self.crashes = 0

    def load(self) -> None:
        """Start one environment now (the first cold start), so an import error surfaces at once."""
        env = self._acquire()
        self._release(env)

    def _acquire(self) -> ExecutionEnvironment:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError(self.spec.logical_id, {"errorType": "Stopped",
                                                               "errorMessage": "the local stack is stopping"})
                while self._idle:
                    env = self._idle.pop()  # the most recently used: warmest, as Lambda prefers
                    if not env.dead:
                        return env
                    self._count -= 1
                if self._count < self.config.max_concurrency:
                    self._count += 1
                    break
                self._cond.wait(0.5)
        try:
            env = ExecutionEnvironment(self.config)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        self.cold_starts += 1
        return env

    def _release(self, env: ExecutionEnvironment) -> None:
        with self._cond:
            if env.dead or self._closed:
                self._count -= 1
                if not env.dead:
                    env.stop()
            else:
                self._idle.append(env)
            self._cond.notify()

    def invoke(self, event: Any, *, budget_seconds: float | None = None, details: dict | None = None) -> Any:
        """Run the handler once in an environment; FunctionError (or a subclass) if it fails.
        `details`, if given, gets what the runtime saw besides the result (`visibility_set`:
        receipt handles whose visibility the invocation changed)."""
        crash_at = self.faults.crash_point(self.spec.logical_id, self.max_boundaries) if self.faults else None
        env = self._acquire()
        deadline = time.time() + (self.spec.timeout if budget_seconds is None else budget_seconds)
        try:
            reply = env.invoke(event, deadline, crash_at)
        except FunctionCrashed:
            self.crashes += 1
            raise
        finally:
            self._release(env)
        self.max_boundaries = max(self.max_boundaries, int(reply.get("boundaries") or 0))
        if details is not None:
            details["visibility_set"] = set(reply.get("visibility_set") or ())
        if self.on_decisions is not None and reply.get("decisions"):
            self.on_decisions(self.spec.logical_id, reply["decisions"])
        if reply.get("op") == "error":
            raise FunctionError(self.spec.logical_id, reply["error"])
        return reply.get("value")

    def pids(self) -> list[int]:
        """The process ids of the idle environments (for tests that look at /proc)."""
        with self._cond:
            return [env.process.pid for env in self._idle if not env.dead]

    def unload(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for env in idle:
            env.stop()


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
