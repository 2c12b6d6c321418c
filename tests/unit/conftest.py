"""Unit-test fixtures: moto in-process AWS, a fake Kie speaking Kie's documented wire format
through httpx.MockTransport, real-shaped Lambda events from events/."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAMPLES = ROOT / "samples"
KIE_KEY = "kie-test-key"
KIE_HMAC = "kie-hmac-test-key"
DEV_KEY = "mr_test_dev_key_0123456789abcdef"
OUTPUT_URL = "https://cdn.kie.example/r/out.mp4"


def load_event(name: str) -> dict:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


def data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def kie_signature(task_id: str, timestamp: str, key: str = KIE_HMAC) -> str:
    return base64.b64encode(hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
                            .digest()).decode()


class FakeContext:
    function_name = "motionrelay-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:motionrelay-test"
    aws_request_id = "6f1c2d3e-0000-4000-8000-000000000000"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class FakeKie:
    """Kie's documented createTask/recordInfo behaviour, plus the output CDN."""

    state: str = "waiting"
    submit_code: int = 200
    submit_http_status: int = 200
    fail_msg: str = ""
    calls: list = field(default_factory=list)
    tasks: dict = field(default_factory=dict)
    video_bytes: bytes = b""
    output_content_type: str = "video/mp4"
    # A submit's other endings: an exception to raise (after the request "left") or a response.
    raise_on_submit: Any = None
    before_submit: Any = None  # called first (a test can hold a submit in flight)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if path == "/api/v1/jobs/createTask" and self.before_submit is not None:
            self.before_submit()
        if path == "/api/v1/jobs/createTask" and self.raise_on_submit is not None:
            if isinstance(self.raise_on_submit, httpx.Response):
                return self.raise_on_submit
            raise self.raise_on_submit
        if path == "/r/out.mp4":
            return httpx.Response(200, content=self.video_bytes,
                                  headers={"content-type": self.output_content_type})
        if request.headers.get("authorization") != f"Bearer {KIE_KEY}":
            return httpx.Response(401, json={"code": 401, "msg": "You do not have access permissions"})
        if path == "/api/v1/jobs/createTask":
            if self.submit_code != 200 or self.submit_http_status != 200:
                return httpx.Response(self.submit_http_status, json={"code": self.submit_code, "msg": "nope"})
            body = json.loads(request.content)
            task_id = f"task_kling-2.6_{len(self.tasks) + 1:013d}"
            self.tasks[task_id] = body
            return httpx.Response(200, json={"code": 200, "msg": "success", "data": {"taskId": task_id}})
        if path == "/api/v1/jobs/recordInfo":
            task_id = request.url.params.get("taskId")
            if task_id not in self.tasks:
                return httpx.Response(200, json={"code": 404, "msg": "Task not found"})
            data = {"taskId": task_id, "model": "kling-2.6/motion-control", "state": self.state,
                    "param": json.dumps(self.tasks[task_id]), "resultJson": "", "failCode": "", "failMsg": "",
                    "createTime": 1, "updateTime": 2}
            if self.state == "success":
                data["resultJson"] = json.dumps({"resultUrls": [OUTPUT_URL]})
                data["creditsConsumed"] = 55
            if self.state == "fail":
                data.update(failCode="500", failMsg=self.fail_msg or "generation failed")
            return httpx.Response(200, json={"code": 200, "msg": "success", "data": data})
        return httpx.Response(404, json={"code": 404, "msg": "not found"})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    def submits(self) -> int:
        return sum(1 for _, p in self.calls if p.endswith("/createTask"))

    def accepted(self) -> int:
        return len(self.tasks)

    def status_calls(self) -> int:
        return sum(1 for _, p in self.calls if p.endswith("/recordInfo"))


@pytest.fixture
def aws(monkeypatch):
    """moto-backed AWS with the stack's resources created from motionrelay.infra.resources."""
    from moto import mock_aws

    from motionrelay.infra.aws import reset_clients
    from motionrelay.registry import reset_adapters
    from motionrelay.settings import reset_settings

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "MOTIONRELAY_TABLE": "jobs", "MOTIONRELAY_BUCKET": "media", "MOTIONRELAY_ROUTING": "kie",
        "MOTIONRELAY_KIE_API_KEY": KIE_KEY, "MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY": KIE_HMAC,
        "MOTIONRELAY_KIE_BASE_URL": "https://api.kie.example",
        "MOTIONRELAY_PUBLIC_URL": "https://api.motionrelay.example",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "MotionRelay",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "MOTIONRELAY_LOCAL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    def reset():
        reset_settings()
        reset_clients()
        reset_adapters()

    from motionrelay_local.moto_atomic import make_dynamodb_writes_atomic

    make_dynamodb_writes_atomic()  # as in DynamoDB, a conditional write is atomic
    with mock_aws():
        reset()
        from motionrelay_local.bootstrap import create_all

        urls = create_all("jobs", "media", "transfer")
        monkeypatch.setenv("MOTIONRELAY_TRANSFER_QUEUE_URL", urls["transfer_queue_url"])
        monkeypatch.setenv("MOTIONRELAY_NOTIFY_QUEUE_URL", urls["notify_queue_url"])
        reset()
        from motionrelay.apikeys import put_key

        put_key(DEV_KEY, tenant_id="tenant-a", name="test")
        yield urls
    reset()


@pytest.fixture
def kie(monkeypatch):
    """A fake Kie wired in as the provider client and as the output download client."""
    fake = FakeKie(video_bytes=(SAMPLES / "motion.mp4").read_bytes())
    monkeypatch.setattr("motionrelay.infra.http_clients.provider_client", lambda timeout: fake.client())
    monkeypatch.setattr("motionrelay.infra.http_clients.async_provider_client",
                        lambda timeout, max_connections: fake.async_client())
    for module in ("submission", "callbacks"):
        monkeypatch.setattr(f"motionrelay.{module}.provider_client", lambda timeout: fake.client())
    return fake


@pytest.fixture
def kie_cdn(kie, monkeypatch):
    """Also serve the provider's output link from the fake (instead of the guarded client)."""
    monkeypatch.setattr("motionrelay.infra.netguard.guarded_client", lambda **kw: kie.client())
    return kie


def seed_job(item: dict):
    """Arrange a stored job in any phase (what earlier events would have left), bypassing the
    transitions: test setup, never product code."""
    from motionrelay.domain.job import Job
    from motionrelay.infra.jobs_table import JobStore, to_ddb

    store = JobStore()
    full = {"pk": f"JOB#{item['id']}", "sk": "JOB", **item}
    store.ddb.put_item(TableName=store.table, Item={k: to_ddb(v) for k, v in full.items() if v is not None})
    return Job.from_item(full)


def set_attributes(job_id: str, **values) -> None:
    """Arrange attributes on a stored job directly (test setup, never product code)."""
    from motionrelay.infra.jobs_table import JobStore, job_key, to_ddb

    store = JobStore()
    names = {f"#a{i}": k for i, k in enumerate(values)}
    store.ddb.update_item(
        TableName=store.table, Key=job_key(job_id),
        UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(values))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":a{i}": to_ddb(v) for i, v in enumerate(values.values())})


def queued_messages(queue_url: str) -> list[dict]:
    from motionrelay.infra.aws import client

    sqs = client("sqs")
    messages = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=0).get("Messages", [])
        new = [m for m in batch if m["MessageId"] not in {x["MessageId"] for x in messages}]
        if not new:
            return messages
        messages.extend(new)


AIMLAPI_URL = "https://api.aimlapi.example"


class FakeAimlapi:
    """AI/ML API's documented create endpoint (providers.md section 2)."""

    def __init__(self) -> None:
        self.status = 200
        self.submits = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer aiml-test-key"
        if request.url.path == "/v2/video/generations" and request.method == "POST":
            self.submits += 1
            if self.status != 200:
                return httpx.Response(self.status, json={"message": "unavailable", "statusCode": self.status})
            return httpx.Response(200, json={"id": f"gen-{self.submits}", "status": "queued"})
        generation = request.url.params.get("generation_id")
        return httpx.Response(200, json={"id": generation, "status": "generating"})


@pytest.fixture
def providers(aws, kie, monkeypatch):
    """Routing `kie,aimlapi`, both faked on one transport that dispatches by host."""
    aiml = FakeAimlapi()
    from motionrelay.settings import reset_settings

    monkeypatch.setenv("MOTIONRELAY_ROUTING", "kie,aimlapi")
    monkeypatch.setenv("MOTIONRELAY_AIMLAPI_API_KEY", "aiml-test-key")
    monkeypatch.setenv("MOTIONRELAY_AIMLAPI_BASE_URL", AIMLAPI_URL)
    reset_settings()

    def route(request: httpx.Request) -> httpx.Response:
        return aiml.handle(request) if request.url.host == "api.aimlapi.example" else kie.handler(request)

    def client(timeout: float) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(route))

    monkeypatch.setattr("motionrelay.submission.provider_client", client)
    return kie, aiml


@pytest.fixture(scope="module")
def sample_media(tmp_path_factory: pytest.TempPathFactory):
    """The samples over plain loopback HTTP, standing in for the presigned URLs the gateway sends."""
    import shutil
    from functools import partial

    from motionrelay_local.loopback import QuietFiles, serve

    root = tmp_path_factory.mktemp("sample-media")
    samples = Path(__file__).resolve().parents[2] / "samples"
    for name in ("character.png", "motion.mp4"):
        shutil.copy(samples / name, root / name)
    srv = serve(partial(QuietFiles, directory=str(root)))
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def loopback_http():
    """An httpx client for loopback servers (no proxy from the environment)."""
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client
