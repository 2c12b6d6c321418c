"""The local stack: the real handlers, in one process, on loopback.

    with LocalStack(port=0) as stack:
        httpx.get(f"{stack.api_url}/v1/jobs/...", headers={"Authorization": f"Bearer {stack.dev_api_key}"})

What runs, all on 127.0.0.1:
- moto's ThreadedMotoServer as DynamoDB, S3 and SQS; the resources are created from the
  package's own definitions (`motionrelay.resources.create_all`), the dev API key seeded;
- the sandbox, simulating the providers' HTTP APIs (callbacks, Kie's HMAC signature);
- an HTTP server that turns requests into API Gateway HTTP API 2.0 events for the functions
  the template routes them to (`apigw.py`, routes read from `template.yaml`);
- a scheduler thread invoking the poller like an EventBridge schedule;
- one pump per queue feeding SQS batches to its consumer like Lambda's event source
  mapping, honouring partial batch responses (failed messages come back after a short
  local visibility timeout; moto moves them to the DLQ after maxReceiveCount).

The process environment is set as Lambda's would be (`AWS_ENDPOINT_URL` -> moto,
`MOTIONRELAY_*`) and restored by `stop()`; `MOTIONRELAY_LOCAL=1` is what allows loopback
URLs, here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from motionrelay_local.apigw import MAX_REQUEST_BYTES, Gateway, HttpResponse, RouteTable, gateway_error
from motionrelay_local.lambda_runtime import (
    REGION,
    LambdaFunction,
    failed_message_ids,
    scheduled_event,
    sqs_event,
)
from motionrelay_local.template import FunctionSpec, SamTemplate, TemplateError

log = logging.getLogger("motionrelay_local")

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
JOIN_TIMEOUT = 10.0


def _random_key(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class LocalStack:
    """Everything `make dev` / `make demo` / the integration tests run. A context manager.

    After `start()`: `api_url`, `dev_api_key`, `moto_url`, `sandbox` (the Sandbox, or None),
    `bucket`, `table`, `queue_urls` / `transfer_queue_url`, `kie_hmac_key`, and `stats`:
    `transfer_invocations` (Counter: job_id -> messages handed to the transfer function; likewise
    `notify_invocations` for the notifier),
    `poller_invocations` (int), `invocations` and `handler_errors` (Counter: function logical
    id -> n), `api_requests` (Counter: route key, or the status of a gateway-level refusal).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        poll_interval: float = 1.0,
        sandbox_state_seconds: float | None = None,
        routing: str = "kie",
        dev_api_key: str | None = None,
        kie_hmac_key: str | None = None,
        root: Path | None = None,
        template_path: Path | None = None,
        use_sandbox: bool = True,
        poller_budget_seconds: float = 5.0,
        retry_visibility_seconds: int = 1,
        extra_env: dict[str, str] | None = None,
        name: str = "motionrelay-local",
    ) -> None:
        """
        port: API port (0 = a free one). poll_interval: seconds between poller runs.
        sandbox_state_seconds: how long each simulated provider state lasts (None = sandbox default).
        routing: `MOTIONRELAY_ROUTING`. kie_hmac_key: Kie's webhook HMAC key ("" = unsigned callbacks).
        use_sandbox: False leaves the providers' `MOTIONRELAY_<P>_*` settings to the environment.
        poller_budget_seconds: the poller's `get_remaining_time_in_millis()` budget per run.
        retry_visibility_seconds: how soon a message whose processing failed is retried.
        extra_env: more environment for the handlers (e.g. MOTIONRELAY_JOB_DEADLINE_SECONDS), set last.
        """
        self.root = (root or REPO_ROOT).resolve()
        self.template_path = template_path or self.root / "template.yaml"
        self._port_request = int(port)
        self.poll_interval = float(poll_interval)
        self.sandbox_state_seconds = sandbox_state_seconds
        self.routing = routing
        self._dev_api_key = dev_api_key or os.environ.get("MOTIONRELAY_DEV_API_KEY") or _random_key("mr_dev_")
        self._kie_hmac_key = _random_key("whk_") if kie_hmac_key is None else kie_hmac_key
        self.use_sandbox = use_sandbox
        self.poller_budget_seconds = poller_budget_seconds
        self.retry_visibility_seconds = retry_visibility_seconds
        self.extra_env = dict(extra_env or {})
        self.table = f"{name}-jobs"
        self.bucket = f"{name}-media"
        self.transfer_queue_name = f"{name}-transfer"

        self.stats: dict[str, Any] = {
            "transfer_invocations": Counter(),  # job_id -> messages handed to the transfer function
            "poller_invocations": 0,
            "invocations": Counter(),  # function logical id -> invocations
            "handler_errors": Counter(),  # function logical id -> invocations that raised
            "api_requests": Counter(),  # route key (or "404") -> requests
        }
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pumps: list[_QueuePump] = []
        self._functions: dict[str, LambdaFunction] = {}
        self._saved_env: dict[str, str | None] = {}
        self._httpd: _ApiServer | None = None
        self._serving = False
        self._moto: Any = None
        self._sandbox: Any = None
        self._moto_url = ""
        self._api_url = ""
        self.queue_urls: dict[str, str] = {}
        self._started = False

    # -- public surface ---------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self._api_url

    @property
    def dev_api_key(self) -> str:
        return self._dev_api_key

    @property
    def sandbox(self) -> Any:
        return self._sandbox

    @property
    def moto_url(self) -> str:
        return self._moto_url

    @property
    def kie_hmac_key(self) -> str:
        return self._kie_hmac_key

    @property
    def transfer_queue_url(self) -> str:
        return self.queue_urls.get("transfer", "")

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        if self._started:
            return self
        self._started = True
        self._stop.clear()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop threads and servers, restore the environment. Safe to call more than once."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        if self._httpd is not None:
            if self._serving:
                self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
            if thread.is_alive():
                log.warning("thread %s did not stop within %.0f s", thread.name, JOIN_TIMEOUT)
        self._threads.clear()
        self._pumps.clear()
        for fn in self._functions.values():
            fn.unload()
        self._functions.clear()
        for name, closer in (("sandbox", self._stop_sandbox), ("moto", self._stop_moto)):
            try:
                closer()
            except Exception:  # noqa: BLE001 - keep shutting the rest down
                log.exception("stopping %s failed", name)
        self._restore_env()

    def queues_idle(self) -> bool:
        """True when no queue holds a message (visible or in flight) and no pump is invoking."""
        if any(p.busy for p in self._pumps):
            return False
        for pump in self._pumps:
            attrs = pump.sqs.get_queue_attributes(
                QueueUrl=pump.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if int(attrs["ApproximateNumberOfMessages"]) or int(
                attrs["ApproximateNumberOfMessagesNotVisible"]
            ):
                return False
        return True

    def wait_until_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queues_idle():
                return True
            time.sleep(0.1)
        return False

    def serve_forever(self) -> None:
        """Block until Ctrl-C (or SIGTERM turned into KeyboardInterrupt by the caller)."""
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            log.info("stopping")

    # -- start-up ---------------------------------------------------------------------

    def _start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request at INFO
        template = SamTemplate.from_file(self.template_path, self.root)
        routes = template.http_routes()
        if not routes:
            raise TemplateError(f"{self.template_path} declares no HttpApi routes")
        table = RouteTable(routes)
        for route in routes:
            self._add_function(template.functions[route.target])

        # Bind the API first: its URL is the callback base the handlers need from the start.
        self._httpd = _ApiServer((HOST, self._port_request), _ApiRequestHandler)
        self._httpd.stack = self
        self._httpd.gateway = Gateway(table, self._invoke_for_route)
        self._api_url = f"http://{HOST}:{self._httpd.server_address[1]}"

        from moto.server import ThreadedMotoServer

        from motionrelay_local.moto_atomic import make_dynamodb_writes_atomic

        make_dynamodb_writes_atomic()  # DynamoDB's conditional writes are atomic; moto's are not
        self._moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        self._moto.start()
        self._moto_url = f"http://{HOST}:{self._moto.get_host_and_port()[1]}"

        env = {
            "AWS_ENDPOINT_URL": self._moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "MOTIONRELAY_TABLE": self.table,
            "MOTIONRELAY_BUCKET": self.bucket,
            "MOTIONRELAY_PUBLIC_URL": self._api_url,
            "MOTIONRELAY_LOCAL": "1",
            # Sandbox jobs take seconds, not the 60-180 s of the real providers.
            "MOTIONRELAY_POLL_TIME_SCALE": os.environ.get("MOTIONRELAY_POLL_TIME_SCALE", "0.05"),
            "MOTIONRELAY_ROUTING": self.routing,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "MotionRelay",
        }
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN"):
            env[name] = ""  # never let real credentials near the local stack
        # The template's own function settings first (log level, service name), ours on top.
        env = template.environment(template.functions.values()) | env
        if self.use_sandbox:
            env |= self._start_sandbox()
        env |= self.extra_env
        for name, value in env.items():
            self._setenv(name, value)

        from motionrelay import aws, idempotency, providers, resources, settings

        settings.reset_settings()
        aws.reset_clients()
        # A stack started after another one in this process (one per test module) must not
        # reuse adapters bound to the previous sandbox's URLs or the idempotency layer's
        # clients of the previous moto.
        providers.reset_adapters()
        idempotency.reset()
        queues = resources.create_all(
            table_name=self.table, bucket_name=self.bucket, transfer_queue_name=self.transfer_queue_name
        )
        # Every `<name>_queue_url` gets `MOTIONRELAY_<NAME>_QUEUE_URL` and a pump to functions/<name>/.
        for key, url in queues.items():
            if key.endswith("_queue_url"):
                name = key.removesuffix("_queue_url")
                self.queue_urls[name] = url
                self._setenv(f"MOTIONRELAY_{name.upper()}_QUEUE_URL", url)
        settings.reset_settings()

        from motionrelay import apikeys

        apikeys.put_key(self._dev_api_key, tenant_id="dev", name="dev")

        scheduled = self._scheduled_functions(template)
        pumps = []
        for name, url in self.queue_urls.items():
            # By folder (functions/transfer/), else by the template's SQS event on the queue
            # (`notify` -> NotifyQueue -> NotifierFunction in functions/notifier/).
            queue_id = "".join(part.title() for part in name.split("_")) + "Queue"
            spec = (template.function_for_folder(name) or template.function_for_queue(queue_id)
                    or self._folder_spec(name))
            if spec is None:
                if name == "transfer":
                    raise TemplateError(
                        "no transfer function (functions/transfer/) to consume the transfer queue"
                    )
                log.warning("nothing consumes the %s queue locally (no functions/%s/)", name, name)
                continue
            pumps.append((name, url, self._add_function(spec), spec))

        # Cold starts happen here, with the environment in place, so import errors surface now.
        for fn in self._functions.values():
            fn.load()

        serve = threading.Thread(target=self._serve, name="mrlocal-api", daemon=True)
        self._threads.append(serve)
        self._serving = True
        serve.start()
        if scheduled:
            self._spawn("mrlocal-scheduler", self._schedule_loop, scheduled)
        for name, url, fn, spec in pumps:
            pump = _QueuePump(self, name, url, fn, spec)
            self._pumps.append(pump)
            self._spawn(f"mrlocal-pump-{name}", pump.run)
        log.info("local stack up: API %s, moto %s", self._api_url, self._moto_url)

    def _start_sandbox(self) -> dict[str, str]:
        from motionrelay.settings import PROVIDERS
        from motionrelay_local.sandbox import Sandbox

        keys = {p: _random_key(f"sbx_{p}_") for p in PROVIDERS}
        sandbox = Sandbox(host=HOST, port=0, api_keys=keys, kie_hmac_key=self._kie_hmac_key or None)
        self._sandbox = sandbox.start()
        env = {"MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY": self._kie_hmac_key}
        for p in PROVIDERS:
            try:
                base_url = sandbox.base_url(p)
            except KeyError:  # not simulated (yet): left to the environment
                continue
            env[f"MOTIONRELAY_{p.upper()}_API_KEY"] = keys[p]
            env[f"MOTIONRELAY_{p.upper()}_BASE_URL"] = base_url
            if self.sandbox_state_seconds is not None:
                sandbox.configure(p, state_seconds=self.sandbox_state_seconds)
        return env

    def _folder_spec(self, folder: str) -> FunctionSpec | None:
        """A function the template does not declare (yet) but the fixed layout has."""
        code_dir = self.root / "functions" / folder
        if not (code_dir / f"{folder}_handler.py").is_file():
            return None
        log.warning(
            "template.yaml has no function for functions/%s/; running it with Lambda defaults", folder
        )
        return FunctionSpec(
            logical_id=f"{folder.title()}Function",
            code_dir=code_dir.resolve(),
            handler=f"{folder}_handler.lambda_handler",
            timeout=3,
            memory=128,
            function_name=f"motionrelay-local-{folder}",
        )

    def _scheduled_functions(self, template: SamTemplate) -> list[tuple[LambdaFunction, dict | None]]:
        """The poller plus any other function with a Schedule event, each with its Input if any."""
        specs = [s for s in template.functions.values() if s.events_of_type("Schedule", "ScheduleV2")]
        poller = template.function_for_folder("poller") or self._folder_spec("poller")
        if poller is not None and poller not in specs:
            specs.insert(0, poller)
        out = []
        for spec in specs:
            fixed_input = None
            for event in spec.events_of_type("Schedule", "ScheduleV2"):
                raw = (event.get("Properties") or {}).get("Input")
                if isinstance(raw, str):
                    fixed_input = json.loads(raw)  # a schedule with Input sends exactly that
            out.append((self._add_function(spec), fixed_input))
        return out

    def _add_function(self, spec: FunctionSpec) -> LambdaFunction:
        if spec.logical_id not in self._functions:
            self._functions[spec.logical_id] = LambdaFunction(spec)
        return self._functions[spec.logical_id]

    def _setenv(self, name: str, value: str) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        if value == "":
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        try:
            from motionrelay import aws, settings
        except ImportError:
            return
        settings.reset_settings()
        aws.reset_clients()

    def _stop_sandbox(self) -> None:
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None

    def _stop_moto(self) -> None:
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
            # ThreadedMotoServer serves moto's process-wide backends: forget this stack's
            # table, bucket and queues, or the next stack in this process (another test
            # module) fails to create its own ("Table already exists").
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()

    # -- running ----------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        assert self._httpd is not None
        self._httpd.serve_forever(poll_interval=0.2)

    def count(self, key: str, item: str | None = None, n: int = 1) -> None:
        with self._stats_lock:
            if item is None:
                self.stats[key] += n
            else:
                self.stats.setdefault(key, Counter())[item] += n

    def invoke(self, fn: LambdaFunction, event: Any, *, budget_seconds: float | None = None) -> Any:
        """Invoke a function, counting invocations and errors (the exception still propagates)."""
        self.count("invocations", fn.spec.logical_id)
        try:
            return fn.invoke(event, budget_seconds=budget_seconds)
        except Exception:
            self.count("handler_errors", fn.spec.logical_id)
            raise

    def _invoke_for_route(self, target: str, event: dict) -> Any:
        return self.invoke(self._functions[target], event)

    def _schedule_loop(self, scheduled: list[tuple[LambdaFunction, dict | None]]) -> None:
        # EventBridge fires at a fixed rate; a run that overlaps the next tick delays it (one environment).
        next_run = time.monotonic() + self.poll_interval
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            next_run = time.monotonic() + self.poll_interval
            for fn, fixed_input in scheduled:
                if self._stop.is_set():
                    return
                event = (
                    fixed_input
                    if fixed_input is not None
                    else scheduled_event(f"{fn.spec.function_name}-schedule")
                )
                if fn.spec.folder == "poller":
                    self.count("poller_invocations")
                try:
                    self.invoke(fn, event, budget_seconds=self.poller_budget_seconds)
                except Exception:  # noqa: BLE001 - a failed run is logged; the schedule goes on
                    log.exception("scheduled %s failed", fn.spec.logical_id)


class _QueuePump:
    """Lambda's SQS event source mapping for one queue, against moto."""

    def __init__(
        self, stack: LocalStack, name: str, queue_url: str, fn: LambdaFunction, spec: FunctionSpec
    ) -> None:
        import boto3

        self.stack = stack
        self.name = name
        self.queue_url = queue_url
        self.fn = fn
        self.busy = False
        self.sqs = boto3.session.Session().client("sqs", endpoint_url=stack.moto_url, region_name=REGION)
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events = spec.events_of_type("SQS")
        props = (events[0].get("Properties") or {}) if events else {}
        # SAM's default batch size is 10; without a template event, one message at a time.
        self.batch_size = max(1, min(10, int(props.get("BatchSize", 10 if events else 1))))
        self.report_failures = (not events) or "ReportBatchItemFailures" in (
            props.get("FunctionResponseTypes") or []
        )

    def run(self) -> None:
        stop = self.stack._stop
        while not stop.is_set():
            try:
                received = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=1,  # short long-poll so stop() is prompt
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:  # noqa: BLE001 - moto hiccups must not kill the pump
                if not stop.is_set():
                    log.exception("receiving from the %s queue failed", self.name)
                    stop.wait(1.0)
                continue
            messages = received.get("Messages") or []
            if messages:
                self.busy = True
                try:
                    self._deliver(messages)
                except Exception:  # noqa: BLE001 - never let one bad batch stop the pump
                    log.exception("delivering a %s batch failed", self.name)
                finally:
                    self.busy = False

    def _deliver(self, messages: list[dict]) -> None:
        for message in messages:
            try:
                job_id = str(json.loads(message["Body"]).get("job_id", "?"))
            except (ValueError, AttributeError):
                job_id = "?"
            self.stack.count(f"{self.name}_invocations", job_id)
        ids = [m["MessageId"] for m in messages]
        try:
            result = self.stack.invoke(self.fn, sqs_event(messages, self.queue_arn))
            failed = failed_message_ids(result, ids) if self.report_failures else set()
            if failed and not self.report_failures:
                log.warning("%s reported batchItemFailures but the template does not enable them", self.name)
        except Exception:  # noqa: BLE001 - an error fails the whole batch, as in Lambda
            log.exception("%s function failed; the batch returns to the queue", self.name)
            failed = set(ids)
        for message in messages:
            try:
                if message["MessageId"] in failed:
                    # In AWS it reappears after the queue's visibility timeout; locally, soon.
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self.stack.retry_visibility_seconds,
                    )
                else:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            except Exception:  # noqa: BLE001
                log.exception("settling message %s failed", message["MessageId"])


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    stack: LocalStack
    gateway: Gateway

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-response is routine; anything else deserves the traceback.
        log.debug("connection from %s failed", client_address, exc_info=True)


class _ApiRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 front of the gateway: reads the request, writes the mapped response."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # two writes per response: avoid the ~40 ms delayed-ACK stall
    server: _ApiServer
    server_version = "motionrelay-local"

    def _serve(self) -> None:
        started = time.monotonic()
        try:
            body, error = self._read_body()
        except ValueError:  # a malformed chunked body
            body, error = b"", gateway_error(400, "Bad Request")
        if error is not None:
            response, route_key = error, str(error.status)
            self.close_connection = True
        else:
            target = self.path
            if "://" in target.split("?", 1)[0]:  # absolute-form request target
                parts = urlsplit(target)
                target = parts.path + (f"?{parts.query}" if parts.query else "")
            response, match = self.server.gateway.handle(
                method=self.command,
                target=target,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                protocol=self.request_version,
            )
            route_key = match.route.route_key if match else str(response.status)
        self.server.stack.count("api_requests", route_key)
        self._write(response)
        log.info(
            "%s %s -> %d (%.0f ms)",
            self.command,
            self.path.split("?", 1)[0],
            response.status,
            (time.monotonic() - started) * 1000,
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self) -> tuple[bytes, HttpResponse | None]:
        too_large = gateway_error(413, "Request Entity Too Large")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks), None
                total += size
                if total > MAX_REQUEST_BYTES:
                    return b"", too_large
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return b"", gateway_error(400, "Bad Request")
        if length > MAX_REQUEST_BYTES:
            # Refused unseen, as API Gateway does; drained so the client gets the 413, not a reset.
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)
            return b"", too_large
        return self.rfile.read(length) if length else b"", None

    def _write(self, response: HttpResponse) -> None:
        self.send_response_only(response.status)
        self.send_header("Date", self.date_time_string())
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)
