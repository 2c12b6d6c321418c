"""Signed client notifications: enqueue exactly once per terminal state, deliver through the
notifier function (moto SQS + an httpx.MockTransport receiver), verify as a receiver would
with `standardwebhooks`, back off on failure, end in the DLQ; the per-tenant secret routes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

import api_handler
import notifier_handler
from conftest import DEV_KEY, FakeContext, load_event, queued_messages
from motionrelay import notify, webhook_secrets
from motionrelay.infra import resources
from motionrelay_local.lambda_runtime import sqs_event

HOOK_URL = "https://hooks.client.example/motionrelay?token=client-side-token"
OTHER_KEY = "mr_test_other_tenant_key_0123456789"


# --------------------------------------------------------------------------- helpers


@dataclass
class Receiver:
    """The client's webhook endpoint: answers with `statuses` in turn (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        headers = {"location": "https://elsewhere.example/hook"} if 300 <= status < 400 else {}
        return httpx.Response(status, headers=headers, text="ok")

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


@pytest.fixture
def receiver(monkeypatch) -> Receiver:
    fake = Receiver()
    monkeypatch.setattr("motionrelay.infra.netguard.guarded_client", lambda **kw: fake.client())
    return fake


@pytest.fixture
def metrics(monkeypatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr("motionrelay.notify.count", lambda name, provider=None, **kw: seen.append(name))
    return seen


@pytest.fixture
def other_tenant(aws):
    from motionrelay.apikeys import put_key

    put_key(OTHER_KEY, tenant_id="tenant-b", name="other")
    return OTHER_KEY


def make_job(job_id: str = "job_notify0001", *, phase: str = "running", webhook_url: str | None = HOOK_URL,
             tenant: str = "tenant-a"):
    from conftest import seed_job

    return seed_job({
        "id": job_id, "tenant_id": tenant, "phase": phase, "provider": "kie", "provider_task_id": "task_1",
        "request": {"quality": "std", "character_orientation": "image", "webhook_url": webhook_url},
        "metadata": {"order": 42}, "attempts": [], "created_at": "2026-01-01T00:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z", "deadline_at": int(time.time()) + 1800,
    })


def succeed(job_id: str):
    from motionrelay.lifecycle import complete

    return complete(job_id, {"key": f"outputs/{job_id}.mp4", "size_bytes": 1234, "sha256": "ab" * 32,
                             "content_type": "video/mp4"})


def notify_queue(aws) -> str:
    return aws["notify_queue_url"]


def receive(aws, visibility: int = 0) -> list[dict]:
    """What the event source mapping would receive now (each receive counts as one)."""
    from motionrelay.infra.aws import client

    return client("sqs").receive_message(
        QueueUrl=notify_queue(aws), MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=visibility,
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])


def run_notifier(aws, messages: list[dict], *, fast_forward: bool = True) -> dict:
    """Invoke the notifier with a received batch and settle it like Lambda's event source
    mapping: succeeded messages are deleted, failed ones stay. Unless told not to, failed
    ones are made visible at once instead of waiting out their backoff."""
    from motionrelay.infra.aws import client

    sqs = client("sqs")
    result = notifier_handler.lambda_handler(
        sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:notify"), FakeContext())
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=notify_queue(aws), ReceiptHandle=message["ReceiptHandle"])
        elif fast_forward:
            sqs.change_message_visibility(QueueUrl=notify_queue(aws), VisibilityTimeout=0,
                                          ReceiptHandle=message["ReceiptHandle"])
    return result


def api(method: str, path: str, key: str | None = DEV_KEY) -> tuple[int, dict, dict]:
    event = load_event("api_get_job.json")
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event.pop("pathParameters", None)
    if key is None:
        del event["headers"]["authorization"]
    else:
        event["headers"]["authorization"] = f"Bearer {key}"
    response = api_handler.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"]), response.get("headers") or {}


def verify(request: httpx.Request, secret: str) -> dict:
    """Exactly what a receiver does: the raw body, the three headers, the tenant's secret."""
    return Webhook(secret).verify(request.content, dict(request.headers))


# --------------------------------------------------------------------------- enqueue: exactly once


def test_a_terminal_transition_queues_one_notification(aws):
    from motionrelay.lifecycle import fail

    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    fail("job_notify0001", "generation_failed", "nope again", event="provider_failed")  # duplicated

    [message] = queued_messages(notify_queue(aws))
    assert json.loads(message["Body"]) == {
        "job_id": "job_notify0001", "webhook_id": "msg_job_notify0001_failed", "type": "job.failed"}


def test_duplicate_provider_results_and_late_events_queue_nothing_more(aws):
    from motionrelay.domain.job import ProviderState, ProviderStatus
    from motionrelay.lifecycle import apply

    make_job()
    failed = ProviderStatus(ProviderState.FAILED, error_code="generation_failed", error_message="x")
    assert apply("job_notify0001", failed) is not None
    for status in (failed, failed, ProviderStatus(ProviderState.SUCCEEDED, output_url="https://cdn.example/o.mp4"),
                   ProviderStatus(ProviderState.RUNNING, progress=50)):
        assert apply("job_notify0001", status) is None

    assert len(queued_messages(notify_queue(aws))) == 1


def test_complete_twice_queues_once(aws):
    make_job(phase="transferring")
    assert succeed("job_notify0001") is not None
    assert succeed("job_notify0001") is None

    [message] = queued_messages(notify_queue(aws))
    assert json.loads(message["Body"])["type"] == "job.succeeded"


def test_cancel_queues_once_and_a_late_result_adds_nothing(aws):
    from motionrelay.apikeys import Principal
    from motionrelay.domain.errors import Conflict
    from motionrelay.jobs import cancel_job
    from motionrelay.lifecycle import fail

    make_job()
    principal = Principal(tenant_id="tenant-a", key_name="test")
    cancel_job(principal, "job_notify0001")
    with pytest.raises(Conflict):
        cancel_job(principal, "job_notify0001")
    assert fail("job_notify0001", "timeout", "late", event="deadline_passed") is None

    [message] = queued_messages(notify_queue(aws))
    assert json.loads(message["Body"])["webhook_id"] == "msg_job_notify0001_canceled"


def test_jobs_without_a_webhook_url_queue_nothing(aws):
    from motionrelay.lifecycle import fail

    make_job(webhook_url=None)
    assert fail("job_notify0001", "generation_failed", "nope", event="provider_failed") is not None
    assert queued_messages(notify_queue(aws)) == []


def test_a_queue_failure_does_not_undo_or_fail_the_transition(aws, monkeypatch):
    from motionrelay.infra.aws import client
    from motionrelay.lifecycle import fail

    seen: list[str] = []
    monkeypatch.setattr("motionrelay.notify.count", lambda name, provider=None, **kw: seen.append(name))

    def broken(**kwargs):
        raise RuntimeError("SQS is down")

    monkeypatch.setattr(client("sqs"), "send_message", broken)
    make_job()
    job = fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    assert job is not None and job.status == "failed"
    assert seen == ["NotificationsEnqueueFailed"]


# --------------------------------------------------------------------------- delivery and signature


def test_the_notification_is_the_signed_job_resource(aws, receiver, metrics):
    make_job(phase="transferring")
    succeed("job_notify0001")

    assert run_notifier(aws, receive(aws)) == {"batchItemFailures": []}

    [request] = receiver.requests
    assert request.method == "POST" and str(request.url) == HOOK_URL
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "msg_job_notify0001_succeeded"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    status, secret, _ = api("GET", "/v1/webhook-secret")
    assert status == 200
    payload = verify(request, secret["secret"])
    assert payload["type"] == "job.succeeded"
    job = payload["data"]
    assert payload["timestamp"] == job["completed_at"]
    assert job["id"] == "job_notify0001" and job["status"] == "succeeded" and job["metadata"] == {"order": 42}
    # The same resource as GET /v1/jobs/{id}, with a fresh presigned output URL.
    assert set(job) >= {"id", "status", "provider", "provider_task_id", "progress", "request", "output",
                        "error", "attempts", "metadata", "created_at", "updated_at", "completed_at"}
    assert "outputs/job_notify0001.mp4" in job["output"]["url"] and "Signature" in job["output"]["url"]
    assert job["output"]["sha256"] == "ab" * 32 and job["output"]["expires_at"]
    assert metrics == ["NotificationsDelivered"]
    assert notify.delivered_ids("job_notify0001") == {"msg_job_notify0001_succeeded"}


def test_a_tampered_or_foreign_signature_does_not_verify(aws, receiver):
    from motionrelay.lifecycle import fail

    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    run_notifier(aws, receive(aws))
    [request] = receiver.requests
    forged = httpx.Request("POST", HOOK_URL, content=request.content.replace(b"failed", b"succeeded"),
                           headers=request.headers)
    secret = webhook_secrets.read("tenant-a").secret
    with pytest.raises(WebhookVerificationError):
        verify(forged, secret)
    with pytest.raises(WebhookVerificationError):
        verify(request, webhook_secrets.new_secret())


def test_retries_keep_the_webhook_id_and_sign_each_attempt(aws, receiver, metrics):
    from motionrelay.lifecycle import fail

    receiver.statuses = [500, 503, 200]
    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    failures = []
    for _ in range(3):
        messages = receive(aws)  # visibility 0 here: the test does not wait for the backoff
        assert len(messages) == 1
        failures.append(run_notifier(aws, messages)["batchItemFailures"])
    assert failures[0] == failures[1] == [{"itemIdentifier": messages[0]["MessageId"]}]
    assert failures[2] == []

    secret = webhook_secrets.read("tenant-a").secret
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"msg_job_notify0001_failed"}
    for request in receiver.requests:
        assert verify(request, secret)["data"]["status"] == "failed"
    assert metrics == ["NotificationAttemptsFailed", "NotificationAttemptsFailed", "NotificationsDelivered"]


def test_any_2xx_is_a_delivery(aws, receiver):
    from motionrelay.lifecycle import fail

    for status in (200, 201, 202, 204, 299):  # one job each (one moto setup for all: it is slow)
        receiver.statuses = [status]
        make_job(f"job_notify{status}")
        fail(f"job_notify{status}", "generation_failed", "nope", event="provider_failed")
        assert run_notifier(aws, receive(aws)) == {"batchItemFailures": []}, status
        assert notify.delivered_ids(f"job_notify{status}") == {f"msg_job_notify{status}_failed"}


def test_anything_else_is_a_failed_attempt_and_redirects_are_not_followed(aws, receiver):
    from motionrelay.infra.aws import client
    from motionrelay.lifecycle import fail

    for status in (100, 301, 302, 307, 308, 400, 401, 404, 410, 429, 500, 502):
        receiver.statuses = [status]
        receiver.requests.clear()
        make_job(f"job_notify{status}")
        fail(f"job_notify{status}", "generation_failed", "nope", event="provider_failed")
        messages = receive(aws)
        assert run_notifier(aws, messages)["batchItemFailures"] == [
            {"itemIdentifier": messages[0]["MessageId"]}], status
        assert len(receiver.requests) == 1, status  # a 3xx is not followed to its Location
        assert notify.delivered_ids(f"job_notify{status}") == set(), status
        client("sqs").delete_message(QueueUrl=notify_queue(aws), ReceiptHandle=messages[0]["ReceiptHandle"])
        receiver.requests.clear()


def test_timeouts_and_connection_errors_are_retried(aws, monkeypatch):
    from motionrelay.lifecycle import fail

    def timeout(request):
        raise httpx.ConnectTimeout("slow", request=request)

    monkeypatch.setattr("motionrelay.infra.netguard.guarded_client",
                        lambda **kw: httpx.Client(transport=httpx.MockTransport(timeout)))
    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    messages = receive(aws)
    assert run_notifier(aws, messages)["batchItemFailures"] == [{"itemIdentifier": messages[0]["MessageId"]}]


# --------------------------------------------------------------------------- backoff and DLQ


def test_backoff_schedule_with_jitter():
    schedule = resources.NOTIFY_BACKOFF_SECONDS
    assert schedule == (30, 120, 600, 1800, 3600, 7200, 14400, 28800)
    assert [notify.retry_delay(n, 0.5) for n in range(1, 9)] == list(schedule)
    for n, base in enumerate(schedule, start=1):
        assert notify.retry_delay(n, 0.0) == round(base * 0.8)
        assert notify.retry_delay(n, 0.999999) == round(base * 1.2)
        assert notify.retry_delay(n) <= 12 * 3600  # SQS's maximum visibility timeout
    # The last receive gets no further step: its message goes to the DLQ on the next receive.
    assert notify.retry_delay(resources.NOTIFY_MAX_RECEIVES) == 0
    assert resources.NOTIFY_MAX_RECEIVES == len(schedule) + 1


def test_a_failed_attempt_hides_the_message_until_the_next_backoff_step(aws, receiver, monkeypatch):
    from motionrelay.infra.aws import client
    from motionrelay.lifecycle import fail

    sqs = client("sqs")
    changes: list[dict] = []
    original = sqs.change_message_visibility

    def spy(**kwargs):
        changes.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(sqs, "change_message_visibility", spy)
    receiver.statuses = [500]
    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")

    for attempt, base in enumerate(resources.NOTIFY_BACKOFF_SECONDS[:3], start=1):
        messages = receive(aws)
        assert messages[0]["Attributes"]["ApproximateReceiveCount"] == str(attempt)
        run_notifier(aws, messages, fast_forward=False)
        assert changes[-1]["QueueUrl"] == notify_queue(aws)
        assert changes[-1]["ReceiptHandle"] == messages[0]["ReceiptHandle"]
        assert 0.8 * base - 1 <= changes[-1]["VisibilityTimeout"] <= 1.2 * base + 1
        # Hidden for real: nothing to receive until the step has passed.
        assert sqs.receive_message(QueueUrl=notify_queue(aws), WaitTimeSeconds=0).get("Messages") is None
        sqs.change_message_visibility(QueueUrl=notify_queue(aws), ReceiptHandle=messages[0]["ReceiptHandle"],
                                      VisibilityTimeout=0)  # fast-forward


def test_after_the_last_attempt_the_message_lands_in_the_dlq(aws, receiver, metrics):
    from motionrelay.infra.aws import client
    from motionrelay.lifecycle import fail

    sqs = client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=notify_queue(aws), AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == resources.NOTIFY_MAX_RECEIVES
    dlq_arn = sqs.get_queue_attributes(QueueUrl=aws["notify_dlq_url"], AttributeNames=["QueueArn"])
    assert redrive["deadLetterTargetArn"] == dlq_arn["Attributes"]["QueueArn"]

    receiver.statuses = [503]
    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    for _ in range(resources.NOTIFY_MAX_RECEIVES):
        messages = receive(aws)
        assert len(messages) == 1
        run_notifier(aws, messages)
    assert receive(aws) == []  # this receive moved it
    [dead] = sqs.receive_message(QueueUrl=aws["notify_dlq_url"], WaitTimeSeconds=0)["Messages"]
    assert json.loads(dead["Body"])["job_id"] == "job_notify0001"
    assert len(receiver.requests) == resources.NOTIFY_MAX_RECEIVES
    assert metrics.count("NotificationAttemptsFailed") == resources.NOTIFY_MAX_RECEIVES - 1
    assert metrics[-1] == "NotificationsFailed"


# --------------------------------------------------------------------------- idempotence


def test_a_duplicated_sqs_message_is_posted_once(aws, receiver, metrics):
    from motionrelay.infra.aws import client
    from motionrelay.lifecycle import fail

    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    [message] = queued_messages(notify_queue(aws))
    # SQS delivers at least once: the same message body arrives again, e.g. from the enqueue
    # being retried after a lost response.
    for _ in range(2):
        client("sqs").send_message(QueueUrl=notify_queue(aws), MessageBody=message["Body"])
    messages = receive(aws)
    assert len(messages) == 3
    assert run_notifier(aws, messages[:1]) == {"batchItemFailures": []}
    assert run_notifier(aws, messages[1:]) == {"batchItemFailures": []}  # two copies in one batch
    assert receive(aws) == []

    assert len(receiver.requests) == 1
    assert metrics == ["NotificationsDelivered"]


def test_a_delivery_in_flight_makes_a_duplicate_wait_instead_of_posting(aws, receiver):
    from motionrelay.lifecycle import fail

    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    # The other copy holds the lease.
    assert notify._claim("job_notify0001", "msg_job_notify0001_failed", 50) == ("claimed", 50)

    messages = receive(aws)
    assert run_notifier(aws, messages)["batchItemFailures"] == [{"itemIdentifier": messages[0]["MessageId"]}]
    assert receiver.requests == []


def test_stale_or_malformed_messages_are_dropped(aws, receiver):
    from motionrelay.infra.aws import client

    make_job()  # still running: nothing to notify yet
    sqs = client("sqs")
    for body in ({"job_id": "job_notify0001", "webhook_id": "msg_job_notify0001_failed"},
                 {"job_id": "job_missing", "webhook_id": "msg_job_missing_failed"}, {"nope": 1}):
        sqs.send_message(QueueUrl=notify_queue(aws), MessageBody=json.dumps(body))
    sqs.send_message(QueueUrl=notify_queue(aws), MessageBody="not json")
    assert run_notifier(aws, receive(aws)) == {"batchItemFailures": []}
    assert receiver.requests == []


# --------------------------------------------------------------------------- SSRF guard


def test_urls_the_ssrf_guard_refuses_are_given_up_at_once(aws, metrics):
    """The real guarded client (no mock): non-public addresses, plain http, credentials."""
    from motionrelay.lifecycle import fail

    urls = ["https://10.0.0.8/hook", "https://169.254.169.254/latest/meta-data", "https://localhost/hook",
            "https://[::ffff:127.0.0.1]/hook", "https://100.64.0.1/hook", "http://hooks.client.example/hook",
            "https://user:pw@hooks.client.example/hook"]
    for n, url in enumerate(urls):
        job_id = f"job_ssrf{n}"
        make_job(job_id, webhook_url=url)
        fail(job_id, "generation_failed", "nope", event="provider_failed")
        metrics.clear()
        assert run_notifier(aws, receive(aws)) == {"batchItemFailures": []}, url  # not retried
        assert metrics == ["NotificationsFailed"], url
        assert notify.delivered_ids(job_id) == set(), url
    assert queued_messages(notify_queue(aws)) == []


def test_the_client_is_guarded_and_does_not_follow_redirects(aws, monkeypatch, receiver):
    from motionrelay.lifecycle import fail

    calls: list[dict] = []
    monkeypatch.setattr("motionrelay.infra.netguard.guarded_client",
                        lambda **kw: calls.append(kw) or receiver.client())
    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    run_notifier(aws, receive(aws))
    assert calls == [{"allow_loopback": False}]


def test_guarded_client_defaults_do_not_follow_redirects():
    from motionrelay.infra.netguard import guarded_client

    with guarded_client(allow_loopback=False) as http:
        assert http.follow_redirects is False


# --------------------------------------------------------------------------- the secret routes


def test_the_secret_is_created_on_first_read_and_stays_put(aws):
    status, first, headers = api("GET", "/v1/webhook-secret")
    assert status == 200 and headers.get("Cache-Control") == "no-store"
    assert set(first) == {"secret", "created_at"}
    assert first["secret"].startswith("whsec_")
    Webhook(first["secret"])  # the library accepts it
    import base64

    assert len(base64.b64decode(first["secret"].removeprefix("whsec_"))) == 32
    assert api("GET", "/v1/webhook-secret")[1] == first


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_for_a_day(aws):
    _, old, _ = api("GET", "/v1/webhook-secret")
    status, rotated, headers = api("POST", "/v1/webhook-secret/rotate")
    assert status == 200 and headers.get("Cache-Control") == "no-store"
    assert rotated["secret"] != old["secret"] and rotated["secret"].startswith("whsec_")
    expires = rotated["previous_expires_at"]
    from datetime import datetime

    left = datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp() - time.time()
    assert webhook_secrets.GRACE_SECONDS - 60 < left <= webhook_secrets.GRACE_SECONDS
    assert api("GET", "/v1/webhook-secret")[1] == rotated


def test_secret_routes_need_a_key_and_are_per_tenant(aws, other_tenant):
    for method, path in (("GET", "/v1/webhook-secret"), ("POST", "/v1/webhook-secret/rotate")):
        status, body, _ = api(method, path, key=None)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert api(method, path, key="mr_not_a_key")[0] == 401

    _, mine, _ = api("GET", "/v1/webhook-secret")
    _, theirs, _ = api("GET", "/v1/webhook-secret", key=other_tenant)
    assert mine["secret"] != theirs["secret"]
    api("POST", "/v1/webhook-secret/rotate", key=other_tenant)
    assert api("GET", "/v1/webhook-secret")[1] == mine  # their rotation leaves mine alone
    # The secret items never show up in a tenant's job listing (they are not jobs).
    status, page, _ = api("GET", "/v1/jobs")
    assert status == 200 and page["jobs"] == []


def test_notifications_are_signed_with_the_job_owners_secret(aws, receiver, other_tenant):
    from motionrelay.lifecycle import fail

    make_job(tenant="tenant-b")
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    run_notifier(aws, receive(aws))
    [request] = receiver.requests
    _, theirs, _ = api("GET", "/v1/webhook-secret", key=other_tenant)
    _, mine, _ = api("GET", "/v1/webhook-secret")
    assert verify(request, theirs["secret"])["data"]["id"] == "job_notify0001"
    with pytest.raises(WebhookVerificationError):
        verify(request, mine["secret"])


def test_during_the_grace_period_both_secrets_sign(aws, receiver):
    from motionrelay.lifecycle import fail

    _, old, _ = api("GET", "/v1/webhook-secret")
    _, new, _ = api("POST", "/v1/webhook-secret/rotate")
    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    run_notifier(aws, receive(aws))
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert all(s.startswith("v1,") for s in request.headers["webhook-signature"].split(" "))
    # A receiver still on the old secret and one already on the new secret both accept it.
    assert verify(request, old["secret"]) == verify(request, new["secret"])


def test_after_the_grace_period_only_the_new_secret_signs(aws, receiver):
    from motionrelay.lifecycle import fail

    old = webhook_secrets.get_or_create("tenant-a")
    new = webhook_secrets.rotate("tenant-a", now=time.time() - webhook_secrets.GRACE_SECONDS - 5)
    assert "previous_expires_at" not in api("GET", "/v1/webhook-secret")[1]
    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    run_notifier(aws, receive(aws))
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    verify(request, new.secret)
    with pytest.raises(WebhookVerificationError):
        verify(request, old.secret)


def test_concurrent_first_uses_and_rotations_agree(aws, monkeypatch):
    # Two first uses: the conditional put lets one create; the other reads that one.
    original_read = webhook_secrets.read
    winner = {}

    def racing_read(tenant_id, store=None):
        found = original_read(tenant_id, store)
        if found is None and not winner:
            winner["secret"] = webhook_secrets._create(tenant_id)  # the other request, in between
        return found

    monkeypatch.setattr(webhook_secrets, "read", racing_read)
    assert webhook_secrets.get_or_create("tenant-a").secret == winner["secret"].secret
    monkeypatch.setattr(webhook_secrets, "read", original_read)

    # A rotation that loses the race retries on the newer secret; nothing is lost.
    first = webhook_secrets.rotate("tenant-a")
    second = webhook_secrets.rotate("tenant-a")
    assert second.previous == first.secret and webhook_secrets.read("tenant-a") == second


def test_logs_never_carry_the_secret_or_the_full_url(aws, receiver, caplog, monkeypatch):
    import logging

    from motionrelay.lifecycle import fail

    # Every logger, ours and third parties' (httpx logs each request's full URL at INFO), at the
    # most verbose level: the HTTP libraries' own WARNING pin lowered too, as a later change might.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="motionrelay")
    for name in ("httpx", "httpcore"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    receiver.statuses = [500, 200]
    make_job()
    fail("job_notify0001", "generation_failed", "nope", event="provider_failed")
    api("GET", "/v1/webhook-secret")
    _, rotated, _ = api("POST", "/v1/webhook-secret/rotate")  # two secrets sign from here on
    for _ in range(2):
        run_notifier(aws, receive(aws))
    secret = webhook_secrets.read("tenant-a")
    # Every field of every record (message and extra keys), as the JSON formatter would see it.
    logs = "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in caplog.records)
    assert "notification delivered" in logs and "hooks.client.example" in logs
    assert "HTTP Request: POST https://hooks.client.example/motionrelay?<redacted>" in logs
    for sensitive in (secret.secret, secret.previous, rotated["secret"], "client-side-token"):
        assert sensitive and sensitive not in logs
