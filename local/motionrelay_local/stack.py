"""The local stack: the real handlers, each in execution environments of its own, on loopback.

    with LocalStack(port=0) as stack:
        httpx.get(f"{stack.api_url}/v1/jobs/...", headers={"Authorization": f"Bearer {stack.dev_api_key}"})

What runs, all on 127.0.0.1:
- moto's server (a process of its own) as DynamoDB, S3, SQS and Secrets Manager, with the tables,
  bucket, queues and secret created from `template.yaml` (`provision.py`);
- the sandbox, simulating every provider whose base URL the caller did not point elsewhere;
- an HTTP server that turns requests into API Gateway HTTP API 2.0 events for the functions
  the template routes them to (`apigw.py`);
- a scheduler that invokes the poller on every tick, whether or not the previous run has
  finished (EventBridge does not wait either);
- pumps per queue feeding SQS batches to its consumer like Lambda's event source mapping:
  several batches at once, partial batch responses honoured, failed and crashed batches
  back after a (shortened) visibility timeout, moto's DLQ after maxReceiveCount.

Each function runs as Lambda runs it (`lambda_runtime.py`, `worker.py`): its own processes
with exactly its template environment, its own IAM policy enforced on every AWS call
(`iam.py`), its timeout and memory. Faults come from `MOTIONRELAY_LOCAL_FAULTS` (`faults.py`).
This process's own environment is never changed.

The caller's configuration (`environ`: `make dev` passes the shell's) wins over the stack's
defaults: `MOTIONRELAY_ROUTING`, `MOTIONRELAY_PUBLIC_URL`, and per provider
`MOTIONRELAY_<P>_BASE_URL` / `_API_KEY` (plus `MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY`): a provider
whose base URL is given is not simulated. Provider settings reach the functions the way
they do in AWS, through the provider secret.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from motionrelay.settings import PROVIDERS  # the one list of provider names
from motionrelay_local.apigw import (
    ACCOUNT_ID,
    MAX_REQUEST_BYTES,
    Gateway,
    HttpResponse,
    RouteTable,
    gateway_error,
)
from motionrelay_local.faults import ENV_NAME as FAULTS_ENV
from motionrelay_local.faults import Faults
from motionrelay_local.lambda_runtime import (
    REGION,
    FunctionConfig,
    FunctionCrashed,
    FunctionError,
    FunctionTimeout,
    LambdaFunction,
    failed_message_ids,
    scheduled_event,
    sqs_event,
)
from motionrelay_local.template import (
    LAYER_TYPE,
    FunctionSpec,
    SamTemplate,
    TemplateError,
    function_environment,
    function_property,
    function_statements,
    schedule_seconds,
)

log = logging.getLogger("motionrelay_local")
# One line per API request: the line `make dev` keeps on the terminal (devlog.py).
requests_log = logging.getLogger("motionrelay_local.requests")

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
JOIN_TIMEOUT = 10.0
LOCAL_MAX_CONCURRENCY = 10  # per function: Lambda's account pool, scaled to a laptop
POLL_SHARD_PUMP = "poll_shard"  # the tick's one-message-per-shard queue, consumed by the poller
SQS_POLLERS = 3  # concurrent batches per queue (Lambda's event source mapping starts with 5)
MIN_POLLER_BUDGET = 4.0  # the poller keeps a 1.5 s margin; a submit needs 2 s of what is left


def _random_key(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class ProviderPlan:
    """Which providers are simulated and which the caller pointed elsewhere."""

    def __init__(self, environ: Mapping[str, str], *, simulate: bool = True) -> None:
        urls = {p: environ.get(f"MOTIONRELAY_{p.upper()}_BASE_URL", "").strip().rstrip("/")
                for p in PROVIDERS}
        # Without the sandbox every provider is external, configured or not.
        self.external = {p: url for p, url in urls.items() if url or not simulate}
        self.simulated = [p for p in PROVIDERS if p not in self.external]


class LocalStack:
    """Everything `make dev` / `make demo` / the integration tests run. A context manager.

    After `start()`: `api_url`, `dev_api_key`, `moto_url`, `sandbox` (the Sandbox, or None),
    `bucket`, `table`, `queue_urls` / `transfer_queue_url`, `kie_hmac_key`, `routing`,
    `providers` (ProviderPlan), `faults`, and `stats`: `transfer_invocations` (Counter: job_id ->
    messages handed to the transfer function; likewise `notify_invocations` for the notifier),
    `poller_invocations` (int), `invocations`, `handler_errors`, `crashes`, `timeouts`
    (Counter: function logical id -> n), `redeliveries` (int), `api_requests` (Counter: route
    key, or the status of a gateway-level refusal). `iam_denials()` and `unused_grants()` report
    what the functions' policies refused and what they granted without use.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        poll_interval: float = 1.0,
        sandbox_state_seconds: float | None = None,
        routing: str | None = None,
        dev_api_key: str | None = None,
        kie_hmac_key: str | None = None,
        root: Path | None = None,
        template_path: Path | None = None,
        use_sandbox: bool = True,
        poller_budget_seconds: float | None = None,
        retry_visibility_seconds: int = 1,
        extra_env: dict[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        faults: str | Faults | None = None,
        prewarm: bool = True,
        timeouts: dict[str, int] | None = None,
        name: str = "motionrelay-local",
    ) -> None:
        """
        port: API port (0 = a free one). poll_interval: seconds between schedule ticks.
        sandbox_state_seconds: how long each simulated provider state lasts (None = sandbox default).
        routing: `MOTIONRELAY_ROUTING` (the template's Routing parameter); None = the caller's
        `MOTIONRELAY_ROUTING`, else every simulated provider.
        kie_hmac_key: Kie's webhook HMAC key ("" = unsigned callbacks; None = the caller's or a new one).
        use_sandbox: False simulates nothing (every provider must then be configured by `environ`).
        poller_budget_seconds: a scheduled invocation's time (None = its Timeout scaled like the
        schedule, at least MIN_POLLER_BUDGET).
        retry_visibility_seconds: how soon a message whose processing failed is visible again.
        extra_env: more environment for every function (e.g. MOTIONRELAY_JOB_DEADLINE_SECONDS), on
        top of the template's: what a deployer would add by hand.
        environ: the caller's configuration (see the module docstring); None = none.
        faults: a MOTIONRELAY_LOCAL_FAULTS spec (None = the caller's, else none).
        prewarm: start one environment of every function at start-up (import errors show at
        once); False starts each on its first invocation.
        timeouts: function logical id -> Timeout in seconds instead of the template's (a test
        knob, like poll_interval: e.g. a 20 s transfer so a crashed copy is retried soon).
        """
        self.root = (root or REPO_ROOT).resolve()
        self.template_path = template_path or self.root / "template.yaml"
        self.environ = dict(environ or {})
        self._port_request = int(port)
        self.poll_interval = float(poll_interval)
        self.sandbox_state_seconds = sandbox_state_seconds
        self.providers = ProviderPlan(self.environ, simulate=use_sandbox)
        self.routing = (routing or self.environ.get("MOTIONRELAY_ROUTING", "").strip()
                        or ",".join(self.providers.simulated or PROVIDERS))
        self._dev_api_key = (dev_api_key or self.environ.get("MOTIONRELAY_DEV_API_KEY")
                             or _random_key("mr_dev_"))
        if kie_hmac_key is None:
            kie_hmac_key = self.environ.get("MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY") or _random_key("whk_")
        self._kie_hmac_key = kie_hmac_key
        self.use_sandbox = use_sandbox
        self.poller_budget_seconds = poller_budget_seconds
        self.retry_visibility_seconds = retry_visibility_seconds
        self.extra_env = dict(extra_env or {})
        if isinstance(faults, Faults):
            self.faults = faults
        else:
            self.faults = Faults.parse(faults if faults is not None else self.environ.get(FAULTS_ENV, ""))
        self.prewarm = prewarm
        self.timeouts = dict(timeouts or {})
        self.name = name
        self.table = ""
        self.bucket = ""

        self.stats: dict[str, Any] = {
            "transfer_invocations": Counter(),  # job_id -> messages handed to the transfer function
            "poller_invocations": 0,
            "invocations": Counter(),  # function logical id -> invocations
            "handler_errors": Counter(),  # function logical id -> invocations that failed
            "crashes": Counter(),
            "timeouts": Counter(),
            "redeliveries": 0,
            "api_requests": Counter(),  # route key (or "404") -> requests
        }
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pumps: list[_QueuePump] = []
        self._functions: dict[str, LambdaFunction] = {}
        self._decisions: dict[str, Counter] = {}
        self._statements: dict[str, list] = {}
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
    def functions(self) -> dict[str, LambdaFunction]:
        return dict(self._functions)

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
        """Stop threads, functions and servers. Safe to call more than once."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        if self._httpd is not None:
            if self._serving:
                self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for fn in self._functions.values():
            fn.unload()  # in-flight invocations end with "stopping" as their environments close
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
            if thread.is_alive():
                log.warning("thread %s did not stop within %.0f s", thread.name, JOIN_TIMEOUT)
        self._threads.clear()
        self._pumps.clear()
        for fn in self._functions.values():
            fn.unload()
        for name, closer in (("sandbox", self._stop_sandbox), ("moto", self._stop_moto)):
            try:
                closer()
            except Exception:  # noqa: BLE001 - keep shutting the rest down
                log.exception("stopping %s failed", name)

    def client(self, service: str) -> Any:
        """An admin boto3 client on this stack's moto (the operator's view, no IAM check)."""
        import boto3

        return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
                                      region_name=REGION).client(service, endpoint_url=self._moto_url)

    def queues_idle(self) -> bool:
        """True when no queue holds a message (visible or in flight) and no pump is invoking.
        The poll-shard queue is the schedule itself (a message per shard every tick): not work."""
        pumps = [p for p in self._pumps if p.name != POLL_SHARD_PUMP]
        if any(p.busy for p in pumps):
            return False
        for pump in {p.queue_url: p for p in pumps}.values():
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

    # -- IAM reports ------------------------------------------------------------------

    def _record(self, function: str, decisions: list) -> None:
        with self._stats_lock:
            counter = self._decisions.setdefault(function, Counter())
            for action, resource, allowed in decisions:
                counter[(action, resource, bool(allowed))] += 1
                if not allowed:
                    log.warning("IAM: %s is not allowed %s on %s (template.yaml)", function, action, resource)

    def iam_denials(self) -> list[tuple[str, str, str]]:
        """(function, action, resource) of every AWS call a function's policy refused."""
        with self._stats_lock:
            return sorted({(fn, a, r) for fn, c in self._decisions.items() for (a, r, ok) in c if not ok})

    def policies(self) -> dict[str, list]:
        """Each function's whole role policy (iam.Statement list), as the template gives it."""
        return {fn: list(statements) for fn, statements in self._statements.items()}

    def iam_calls(self) -> dict[str, set[tuple[str, str]]]:
        with self._stats_lock:
            return {fn: {(a, r) for (a, r, ok) in c if ok} for fn, c in self._decisions.items()}

    def unused_grants(self) -> list[tuple[str, str, str, str]]:
        """(function, statement sid, action pattern, resource pattern) granted by template.yaml and
        not used by any call this stack saw: a least-privilege report (only meaningful after a
        run that exercised the function's paths)."""
        from motionrelay_local.iam import Policy, Request, unused_grants

        out = []
        calls = self.iam_calls()
        for fn, statements in self._statements.items():
            policy = Policy(statements)
            allowed = [policy.decide(Request(a, r)) for a, r in calls.get(fn, set())]
            out += [(fn, st.sid, action, resource) for st, action, resource in unused_grants(policy, allowed)]
        return out

    # -- start-up ---------------------------------------------------------------------

    def _start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request at INFO
        template = SamTemplate.from_file(self.template_path, self.root)
        routes = template.http_routes()
        if not routes:
            raise TemplateError(f"{self.template_path} declares no HttpApi routes")
        table = RouteTable(routes)

        # Bind the API first: its URL is the callback base the functions need from the start.
        self._httpd = _ApiServer((HOST, self._port_request), _ApiRequestHandler)
        self._httpd.stack = self
        self._httpd.gateway = Gateway(table, self._invoke_for_route)
        self._api_url = f"http://{HOST}:{self._httpd.server_address[1]}"

        self._moto = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "motionrelay_local.moto_process", HOST], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        line = self._moto.stdout.readline().decode().split() if self._moto.stdout else []
        if len(line) != 2 or line[0] != "port":
            raise TemplateError("moto's server did not start")
        self._moto_url = f"http://{HOST}:{line[1]}"

        provider_settings = self._start_sandbox() if self.use_sandbox else {}
        provider_settings |= self._external_provider_settings()

        from motionrelay_local.provision import Provisioner

        parameters = template.parameter_values(self._parameter_overrides(template))
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": self.name,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        provisioner = Provisioner(template, stack_name=self.name, region=REGION, clients=self.client,
                                  parameters=parameters, pseudo=pseudo, api_origin=self._api_url)
        resolver = provisioner.run()
        secret_arns = self._fill_provider_secret(provisioner, provider_settings)
        self.table = self._ref_of_type(provisioner, "AWS::DynamoDB::Table", prefer="JobsTable")
        self.bucket = self._ref_of_type(provisioner, "AWS::S3::Bucket", prefer="MediaBucket")

        layer_dirs = {lid: str((self.root / str(res.get("Properties", {}).get("ContentUri", ""))).resolve())
                      for lid, res in (template.template.get("Resources") or {}).items()
                      if (res or {}).get("Type") == LAYER_TYPE}
        for spec in template.functions.values():
            self._add_function(template, spec, resolver, layer_dirs, secret_arns)

        self._seed_dev_key()

        pumps = []
        for spec in template.functions.values():
            for event in spec.events_of_type("SQS"):
                queue = resolver.resolve((event.get("Properties") or {}).get("Queue"))
                url = self._queue_url_for_arn(provisioner, str(queue))
                name = {"notifier": "notify", "poller": POLL_SHARD_PUMP}.get(spec.folder, spec.folder)
                self.queue_urls[name] = url
                pumps.append((name, url, self._functions[spec.logical_id], spec))
        scheduled = self._scheduled(template)

        if self.prewarm:  # cold starts here, in parallel, so import errors surface now
            self._load_all()

        serve = threading.Thread(target=self._serve, name="mrlocal-api", daemon=True)
        self._threads.append(serve)
        self._serving = True
        serve.start()
        for fn, fixed_input, budget in scheduled:
            self._spawn(f"mrlocal-schedule-{fn.spec.logical_id}", self._schedule_loop, fn, fixed_input,
                        budget)
        for name, url, fn, spec in pumps:
            pump = _QueuePump(self, name, url, fn, spec)
            for i in range(min(SQS_POLLERS, fn.config.max_concurrency)):
                self._pumps.append(pump)
                self._spawn(f"mrlocal-pump-{name}-{i}", pump.run)
        log.info("local stack up: API %s, moto %s, faults %s", self._api_url, self._moto_url,
                 self.faults.describe())

    def _parameter_overrides(self, template: SamTemplate) -> dict[str, str]:
        """The template parameters as the caller's configuration sets them (like
        `sam deploy --parameter-overrides`); PublicUrl is this API unless the caller gives one."""
        # Two due-index shards (two poll invocations per tick) unless the caller sets them:
        # the compressed schedule ticks every poll_interval on a laptop's cores.
        overrides = {"Routing": self.routing,
                     "DueShards": self.environ.get("MOTIONRELAY_DUE_SHARDS", "").strip() or "2"}
        public = self.environ.get("MOTIONRELAY_PUBLIC_URL", "").strip()
        overrides["PublicUrl"] = public or self._api_url
        template.check_parameter(overrides, skip=() if public else ("PublicUrl",))
        return overrides

    def _ref_of_type(self, provisioner: Any, kind: str, prefer: str) -> str:
        if prefer in provisioner.refs and provisioner.types.get(prefer) == kind:
            return provisioner.refs[prefer]
        return next((provisioner.refs[lid] for lid, t in provisioner.types.items() if t == kind), "")

    def _queue_url_for_arn(self, provisioner: Any, arn: str) -> str:
        for key, value in provisioner.attributes.items():
            if key.endswith(".Arn") and value == arn and f"{key[:-4]}.QueueUrl" in provisioner.attributes:
                return provisioner.attributes[f"{key[:-4]}.QueueUrl"]
        raise TemplateError(f"an SQS event names {arn}, which is not a queue of this template")

    def _start_sandbox(self) -> dict[str, str]:
        from motionrelay_local.sandbox import Sandbox

        keys = {p: _random_key(f"sbx_{p}_") for p in PROVIDERS}
        sandbox = Sandbox(host=HOST, port=0, api_keys=keys, kie_hmac_key=self._kie_hmac_key or None)
        self._sandbox = sandbox.start()
        settings = {}
        if "kie" in self.providers.simulated:
            settings["MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY"] = self._kie_hmac_key
        for p in self.providers.simulated:
            for field, value in sandbox.credentials(p).items():  # API_KEY, fal's JWKS_URL, ...
                settings[f"MOTIONRELAY_{p.upper()}_{field}"] = value
            settings[f"MOTIONRELAY_{p.upper()}_BASE_URL"] = sandbox.base_url(p)
            if self.sandbox_state_seconds is not None:
                sandbox.configure(p, state_seconds=self.sandbox_state_seconds)
        return settings

    def _external_provider_settings(self) -> dict[str, str]:
        settings = {}
        for p, base_url in self.providers.external.items():
            if base_url:
                settings[f"MOTIONRELAY_{p.upper()}_BASE_URL"] = base_url
            for suffix in ("API_KEY", "WEBHOOK_HMAC_KEY", "MODEL", "JWKS_URL", "ACCESS_KEY", "SECRET_KEY"):
                value = self.environ.get(f"MOTIONRELAY_{p.upper()}_{suffix}", "").strip()
                if value:
                    settings[f"MOTIONRELAY_{p.upper()}_{suffix}"] = value
        return settings

    def _fill_provider_secret(self, provisioner: Any, values: dict[str, str]) -> dict[str, str]:
        """Provider credentials and base URLs go where a deployer puts them: into the template's
        provider secret (`put-secret-value`), merged over its initial SecretString."""
        arns = {}
        sm = self.client("secretsmanager")
        for lid, kind in provisioner.types.items():
            if kind != "AWS::SecretsManager::Secret":
                continue
            arn = provisioner.refs[lid]
            arns[arn.rsplit(":", 1)[-1].rsplit("-", 1)[0]] = arn
            current = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"] or "{}")
            if isinstance(current, dict) and any(k.startswith("MOTIONRELAY_") for k in current):
                sm.put_secret_value(SecretId=arn, SecretString=json.dumps(current | values))
        return arns

    def _seed_dev_key(self) -> None:
        from motionrelay import apikeys
        from motionrelay.infra.jobs_table import JobStore

        apikeys.put_key(self._dev_api_key, tenant_id="dev", name="dev",
                        store=JobStore(table_name=self.table, ddb=self.client("dynamodb")))

    def _local_overlay(self) -> dict[str, str]:
        """What the stack adds to every function's template environment, and nothing else:
        AWS_ENDPOINT_URL stands for AWS itself; the rest are the local stack's own knobs."""
        scale = self.environ.get("MOTIONRELAY_POLL_TIME_SCALE", "").strip() or "0.05"
        return {"AWS_ENDPOINT_URL": self._moto_url, "MOTIONRELAY_LOCAL": "1",
                # Sandbox jobs take seconds, not the 60-180 s of the real providers.
                "MOTIONRELAY_POLL_TIME_SCALE": scale, "POWERTOOLS_TRACE_DISABLED": "true"}

    def _add_function(self, template: SamTemplate, spec: FunctionSpec, resolver: Any,
                      layer_dirs: dict[str, str], secret_arns: dict[str, str]) -> None:
        import dataclasses

        from motionrelay_local.iam import Statement

        if spec.logical_id in self.timeouts:
            spec = dataclasses.replace(spec, timeout=int(self.timeouts[spec.logical_id]))
        env = function_environment(template, spec, resolver)
        role = f"{self.name}-{spec.logical_id}Role"
        log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{secrets.token_hex(16)}"
        runtime = {
            # What the Lambda runtime itself sets in every environment.
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream, "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir), "LAMBDA_RUNTIME_DIR": str(spec.code_dir),
            "TZ": ":UTC", "LANG": "en_US.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
            # The role's temporary credentials (moto takes any; the IAM check is ours).
            "AWS_ACCESS_KEY_ID": f"ASIA{spec.logical_id.upper()[:12]:X<12}", "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": f"mrlocal-{spec.logical_id}",
        }
        environment = runtime | env | self._local_overlay() | self.extra_env
        statements = function_statements(template, spec, resolver)
        self._statements[spec.logical_id] = statements
        layers = function_property(template, spec, "Layers", resolver) or []
        reserved = function_property(template, spec, "ReservedConcurrentExecutions", resolver)
        config = FunctionConfig(
            spec=spec, environment=environment,
            # Plain JSON types: the template parser's own str/dict subclasses do not pickle.
            statements=json.loads(json.dumps([st.__dict__ for st in statements
                                              if isinstance(st, Statement)])),
            principal=f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{spec.function_name}",
            secret_arns=secret_arns,
            # `Layers: [!Ref SharedLayer]` resolves to the layer's local name: map it back.
            layer_dirs=tuple(layer_dirs[lid] for lid in layer_dirs
                             if resolver.refs.get(lid) in {str(x) for x in layers}),
            max_concurrency=int(reserved) if reserved else LOCAL_MAX_CONCURRENCY,
        )
        self._functions[spec.logical_id] = LambdaFunction(config, faults=self.faults,
                                                          on_decisions=self._record)

    def _load_all(self) -> None:
        errors: list[BaseException] = []

        def load(fn: LambdaFunction) -> None:
            try:
                fn.load()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(fn,), daemon=True) for fn in self._functions.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _scheduled(self, template: SamTemplate) -> list[tuple[LambdaFunction, dict | None, float]]:
        """Every function with a Schedule event: its Input if any, and its time per run."""
        out = []
        for spec in template.functions.values():
            for event in spec.events_of_type("Schedule", "ScheduleV2"):
                props = event.get("Properties") or {}
                raw = props.get("Input")
                fixed_input = json.loads(raw) if isinstance(raw, str) else None
                rate = schedule_seconds(str(props.get("Schedule") or props.get("ScheduleExpression") or ""))
                out.append((self._functions[spec.logical_id], fixed_input, self.scheduled_budget(spec, rate)))
        return out

    def scheduled_budget(self, spec: FunctionSpec, rate: float) -> float:
        """A run's time when the schedule (every `rate` s) is compressed to poll_interval."""
        if self.poller_budget_seconds is not None:
            return self.poller_budget_seconds
        scaled = spec.timeout * self.poll_interval / rate
        return min(spec.timeout, max(MIN_POLLER_BUDGET, scaled))

    def _stop_sandbox(self) -> None:
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None

    def _stop_moto(self) -> None:
        if self._moto is not None:
            if self._moto.stdin:
                self._moto.stdin.close()
            try:
                self._moto.wait(5)
            except subprocess.TimeoutExpired:
                self._moto.kill()
                self._moto.wait(5)
            self._moto = None

    # -- running ----------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _serve(self) -> None:
        assert self._httpd is not None
        self._httpd.serve_forever(poll_interval=0.2)

    def count(self, key: str, item: str | None = None, n: int = 1) -> None:
        with self._stats_lock:
            if item is None:
                self.stats[key] += n
            else:
                self.stats.setdefault(key, Counter())[item] += n

    def invoke(self, fn: LambdaFunction, event: Any, *, budget_seconds: float | None = None,
               details: dict | None = None) -> Any:
        """Invoke a function, counting invocations and failures (FunctionError still propagates)."""
        name = fn.spec.logical_id
        self.count("invocations", name)
        try:
            return fn.invoke(event, budget_seconds=budget_seconds, details=details)
        except FunctionError as exc:
            self.count("handler_errors", name)
            if isinstance(exc, FunctionCrashed):
                self.count("crashes", name)
            elif isinstance(exc, FunctionTimeout):
                self.count("timeouts", name)
            raise

    def _invoke_for_route(self, target: str, event: dict) -> Any:
        return self.invoke(self._functions[target], event)

    def _schedule_loop(self, fn: LambdaFunction, fixed_input: dict | None, budget: float) -> None:
        # EventBridge fires at a fixed rate and does not wait for the previous run: runs overlap.
        next_run = time.monotonic() + self.poll_interval
        running: list[threading.Thread] = []
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            next_run += self.poll_interval
            running = [t for t in running if t.is_alive()]
            for _ in range(1 + self.faults.overlap):
                if len(running) >= fn.config.max_concurrency:
                    log.warning("%s: throttled (%d runs in flight)", fn.spec.logical_id, len(running))
                    break
                event = fixed_input if fixed_input is not None else scheduled_event(
                    f"{fn.spec.function_name}-schedule")
                if fn.spec.folder in ("poller", "tick"):  # a tick starts the shards' polls
                    self.count("poller_invocations")
                thread = threading.Thread(target=self._scheduled_run, args=(fn, event, budget), daemon=True,
                                          name=f"mrlocal-run-{fn.spec.logical_id}")
                running.append(thread)
                thread.start()
        for thread in running:
            thread.join(budget + 2)

    def _scheduled_run(self, fn: LambdaFunction, event: dict, budget: float) -> None:
        try:
            self.invoke(fn, event, budget_seconds=budget)
        except FunctionError as exc:  # the next tick is the retry (MaximumRetryAttempts: 0)
            if not self._stop.is_set():
                log.warning("scheduled %s failed: %s", fn.spec.logical_id, exc)


class _QueuePump:
    """Lambda's SQS event source mapping for one queue, against moto (several threads run one)."""

    def __init__(
        self, stack: LocalStack, name: str, queue_url: str, fn: LambdaFunction, spec: FunctionSpec
    ) -> None:
        self.stack = stack
        self.name = name
        self.queue_url = queue_url
        self.fn = fn
        self._busy = 0
        self._lock = threading.Lock()
        self.sqs = stack.client("sqs")
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events = spec.events_of_type("SQS")
        props = (events[0].get("Properties") or {}) if events else {}
        self.batch_size = max(1, min(10, int(props.get("BatchSize", 10))))
        # A shard poll lasts what a scheduled run would (its Timeout scaled like the schedule).
        self.budget = stack.scheduled_budget(spec, 60.0) if name == POLL_SHARD_PUMP else None
        self.report_failures = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])

    @property
    def busy(self) -> bool:
        return self._busy > 0

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
            if not messages:
                continue
            with self._lock:
                self._busy += 1
            try:
                self._redeliver_some(messages)
                self._deliver(messages)
            except Exception:  # noqa: BLE001 - never let one bad batch stop the pump
                log.exception("delivering a %s batch failed", self.name)
            finally:
                with self._lock:
                    self._busy -= 1

    def _count(self, messages: list[dict]) -> None:
        for message in messages:
            try:
                job_id = str(json.loads(message["Body"]).get("job_id", "?"))
            except (ValueError, AttributeError):
                job_id = "?"
            self.stack.count(f"{self.name}_invocations", job_id)

    def _redeliver_some(self, messages: list[dict]) -> None:
        """At-least-once: a copy of a message comes again, concurrently or a little later."""
        for message in messages:
            delay = self.stack.faults.redelivery_delay(2.0 * self.stack.retry_visibility_seconds)
            if delay is None:
                continue
            self.stack.count("redeliveries")
            timer = threading.Timer(delay, self._deliver_copy, args=(message,))
            timer.daemon = True
            timer.start()

    def _deliver_copy(self, message: dict) -> None:
        if self.stack._stop.is_set():
            return
        with self._lock:
            self._busy += 1
        try:
            self._count([message])
            self.stack.invoke(self.fn, sqs_event([message], self.queue_arn), budget_seconds=self.budget)
        except FunctionError:
            pass  # the original delivery settles the message; a failed copy changes nothing
        finally:
            with self._lock:
                self._busy -= 1

    def _deliver(self, messages: list[dict]) -> None:
        self._count(messages)
        ids = [m["MessageId"] for m in messages]
        details: dict = {}
        try:
            result = self.stack.invoke(self.fn, sqs_event(messages, self.queue_arn), details=details,
                                       budget_seconds=self.budget)
            failed = failed_message_ids(result, ids) if self.report_failures else set()
        except FunctionError as exc:  # an error, crash or timeout fails the whole batch, as in Lambda
            if not self.stack._stop.is_set():
                log.warning("%s function failed (%s); the batch returns to the queue", self.name, exc)
            failed = set(ids)
        for message in messages:
            try:
                if message["ReceiptHandle"] in details.get("visibility_set", ()):
                    continue  # the function chose when it comes back (a backoff): leave it so
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
    # socketserver's default backlog of 5 resets connections when a dozen clients connect at once.
    request_queue_size = 128
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
        requests_log.info(
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
