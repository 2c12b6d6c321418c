"""The Kie.ai sandbox, driven over loopback HTTP with raw httpx calls written from Kie's docs.

No gateway adapter is involved: these requests are what docs.kie.ai says a client sends,
and the assertions are what it says a client gets back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from motionrelay_local.loopback import QuietFiles, Receiver, loopback_url, serve, wait_until
from motionrelay_local.sandbox import Sandbox

KEY = "sandbox-kie-key"
HMAC_KEY = "whk-secret"
MODEL = "kling-2.6/motion-control"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
STATE_SECONDS = 0.05
DEFAULT_KNOBS: dict[str, Any] = {
    "latency": 0.0, "fail_submit": None, "fail_submit_times": None, "fail_task": None,
    "callbacks": True, "state_seconds": STATE_SECONDS, "callback_retry_delays": [0.5, 1.0, 2.0],
}


# --------------------------------------------------------------------------- helpers



# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadingHTTPServer]:
    """Inputs over plain HTTP, like presigned URLs: the samples plus a broken video."""
    root = tmp_path_factory.mktemp("media")
    for name in ("character.png", "motion.mp4"):
        shutil.copy(SAMPLES / name, root / name)
    (root / "garbage.mp4").write_bytes(b"definitely not an mp4 " * 100)
    srv = serve(partial(QuietFiles, directory=str(root)))
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(api_keys={"kie": KEY}, kie_hmac_key=HMAC_KEY).start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def _reset_knobs(sandbox: Sandbox) -> None:
    sandbox.configure("kie", **DEFAULT_KNOBS)


@pytest.fixture
def receiver() -> Iterator[tuple[ThreadingHTTPServer, type[Receiver]]]:
    handler = type("Receiver", (Receiver,), {"received": [], "statuses": []})
    srv = serve(handler)
    yield srv, handler
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def kie(sb: Sandbox, path: str) -> str:
    return sb.base_url("kie") + path


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def task_body(media: ThreadingHTTPServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "input": {
            "prompt": "a cheerful character dancing",
            "input_urls": [loopback_url(media, "character.png")],
            "video_urls": [loopback_url(media, "motion.mp4")],
            "character_orientation": "image",
            "mode": "720p",
        },
    }
    inp = overrides.pop("input", {})
    body["input"].update(inp)
    body.update(overrides)
    return body


def create(client: httpx.Client, sb: Sandbox, body: dict[str, Any]) -> str:
    r = client.post(kie(sb, "/api/v1/jobs/createTask"), headers=auth(), json=body)
    assert r.status_code == 200, r.text
    assert r.json()["code"] == 200, r.text
    return r.json()["data"]["taskId"]


def record_info(client: httpx.Client, sb: Sandbox, task_id: str) -> dict[str, Any]:
    r = client.get(kie(sb, "/api/v1/jobs/recordInfo"), params={"taskId": task_id}, headers=auth())
    assert r.status_code == 200
    payload = r.json()
    assert payload["code"] == 200 and payload["msg"] == "success"
    return payload["data"]


def poll_final(
    client: httpx.Client, sb: Sandbox, task_id: str, seen: list[str] | None = None
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        data = record_info(client, sb, task_id)
        if seen is not None and (not seen or seen[-1] != data["state"]):
            seen.append(data["state"])
        return data if data["state"] in ("success", "fail") else None

    return wait_until(check)


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong-key"), {"Authorization": KEY}, {"Authorization": "Basic " + KEY}],
    ids=["missing", "wrong-key", "no-scheme", "basic"],
)
def test_unauthorized_requests_get_kie_401(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, headers: dict[str, str]
) -> None:
    r = client.post(kie(sandbox, "/api/v1/jobs/createTask"), headers=headers, json=task_body(media))
    assert r.status_code == 401
    assert r.json() == {"code": 401, "msg": "You do not have access permissions"}
    r = client.get(kie(sandbox, "/api/v1/jobs/recordInfo"), params={"taskId": "x"}, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == 401


def test_post_without_json_content_type_is_refused(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post(kie(sandbox, "/api/v1/jobs/createTask"), headers=auth(), content=b"{}")
    assert r.status_code == 401 and r.json()["code"] == 401


# --------------------------------------------------------------------------- createTask


def test_create_task_envelope(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("kie", fail_task="not rendering in this test")
    r = client.post(
        kie(sandbox, "/api/v1/jobs/createTask"),
        headers={**auth(), "Content-Type": "application/json; charset=utf-8"},
        content=json.dumps(task_body(media)).encode(),
    )
    assert r.status_code == 200
    payload = r.json()
    assert payload["code"] == 200 and payload["msg"] == "success"
    assert set(payload["data"]) == {"taskId"}
    assert re.fullmatch(r"task_kling-2\.6_\d{13}[0-9a-f]{6}", payload["data"]["taskId"])


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["input"].pop(key)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b.update(model="kling-3.0/motion-control"), "model"),
        (lambda b: b.pop("model"), "model"),
        (lambda b: b.pop("input"), "input"),
        (_drop("input_urls"), "input_urls"),
        (_drop("video_urls"), "video_urls"),
        (lambda b: b["input"].update(input_urls=[]), "input_urls"),
        (lambda b: b["input"].update(input_urls=["http://a/1.png", "http://a/2.png"]), "input_urls"),
        (lambda b: b["input"].update(video_urls="http://a/v.mp4"), "video_urls"),
        (lambda b: b["input"].update(input_urls=["data:image/png;base64,AAAA"]), "input_urls"),
        (lambda b: b["input"].update(character_orientation="sideways"), "character_orientation"),
        (lambda b: b["input"].update(mode="pro"), "mode"),
        (lambda b: b["input"].update(prompt="x" * 2501), "prompt"),
        (lambda b: b.update(callBackUrl="not a url"), "callBackUrl"),
    ],
    ids=[
        "wrong-model", "no-model", "no-input", "no-image", "no-video", "empty-image",
        "two-images", "video-not-array", "data-uri", "bad-orientation", "bad-mode",
        "long-prompt", "bad-callback",
    ],
)
def test_validation_errors_are_http_200_with_code_422(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer,
    mutate: Callable[[dict[str, Any]], Any], needle: str,
) -> None:
    body = task_body(media)
    mutate(body)
    before = len(sandbox.tasks)
    r = client.post(kie(sandbox, "/api/v1/jobs/createTask"), headers=auth(), json=body)
    assert r.status_code == 200
    payload = r.json()
    assert payload["code"] == 422 and needle in payload["msg"]
    assert "data" not in payload
    assert len(sandbox.tasks) == before


def test_invalid_json_body_is_422(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post(
        kie(sandbox, "/api/v1/jobs/createTask"),
        headers={**auth(), "Content-Type": "application/json"}, content=b"{not json",
    )
    assert r.status_code == 200 and r.json()["code"] == 422


def test_optional_fields_default(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("kie", fail_task="skip render")
    body = task_body(media)
    for key in ("prompt", "character_orientation", "mode"):
        body["input"].pop(key)
    create(client, sandbox, body)
    create(client, sandbox, task_body(media, input={"prompt": "y" * 2500, "mode": "1080p"}))


# --------------------------------------------------------------------------- fail_submit


@pytest.mark.parametrize("code", [402, 422, 433, 455, 501, 505])
def test_fail_submit_in_body(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, code: int
) -> None:
    sandbox.configure("kie", fail_submit=code)
    r = client.post(kie(sandbox, "/api/v1/jobs/createTask"), headers=auth(), json=task_body(media))
    assert r.status_code == 200
    assert r.json()["code"] == code and r.json()["msg"]


@pytest.mark.parametrize("code", [429, 500])
def test_fail_submit_as_http_status(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, code: int
) -> None:
    sandbox.configure("kie", fail_submit=code)
    r = client.post(kie(sandbox, "/api/v1/jobs/createTask"), headers=auth(), json=task_body(media))
    assert r.status_code == code
    assert r.json()["code"] == code and r.json()["msg"]


def test_fail_submit_times_then_recovers(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("kie", fail_submit=429, fail_submit_times=2, fail_task="skip render")
    url = kie(sandbox, "/api/v1/jobs/createTask")
    codes = [client.post(url, headers=auth(), json=task_body(media)).status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    assert sandbox.config("kie")["fail_submit"] is None


# --------------------------------------------------------------------------- recordInfo


def test_record_info_errors(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.get(kie(sandbox, "/api/v1/jobs/recordInfo"), headers=auth())
    assert r.status_code == 200
    assert r.json() == {"code": 400, "msg": "taskId parameter is required"}
    r = client.get(kie(sandbox, "/api/v1/jobs/recordInfo"), params={"taskId": "task_nope"}, headers=auth())
    assert r.status_code == 200
    assert r.json() == {"code": 404, "msg": "Task not found"}


def test_success_lifecycle_and_playable_output(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, tmp_path: Path
) -> None:
    sandbox.configure("kie", state_seconds=0.15)  # wide enough for a 20 ms poll to see each state
    body = task_body(media)
    started = time.monotonic()
    task_id = create(client, sandbox, body)
    seen: list[str] = []
    data = poll_final(client, sandbox, task_id, seen)
    assert seen == ["waiting", "queuing", "generating", "success"]
    assert time.monotonic() - started >= 3 * 0.15

    assert data["taskId"] == task_id and data["model"] == MODEL
    assert json.loads(data["param"]) == body
    assert isinstance(data["resultJson"], str)
    urls = json.loads(data["resultJson"])["resultUrls"]
    assert len(urls) == 1 and urls[0].endswith(f"/{task_id}.mp4")
    assert data["failCode"] == "" and data["failMsg"] == ""
    assert data["createTime"] <= data["updateTime"] <= data["completeTime"]
    assert isinstance(data["costTime"], int) and data["costTime"] >= 0
    assert data["creditsConsumed"] > 0
    assert "progress" not in data

    # the result link is a public CDN-style URL: no auth header
    r = httpx.get(urls[0], trust_env=False)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    with av.open(str(out)) as c:
        assert c.streams.video and c.streams.audio
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (360, 640)
        assert sum(1 for _ in c.decode(video=0)) > 0


def test_task_states_before_completion_have_no_result(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("kie", state_seconds=0.3, fail_task="skip render")
    task_id = create(client, sandbox, task_body(media))
    data = record_info(client, sandbox, task_id)
    assert data["state"] == "waiting"
    assert data["resultJson"] == "" and data["failCode"] == "" and data["completeTime"] is None


# --------------------------------------------------------------------------- failures


def test_fail_task_knob(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("kie", fail_task="content policy violation (simulated)")
    task_id = create(client, sandbox, task_body(media))
    seen: list[str] = []
    data = poll_final(client, sandbox, task_id, seen)
    assert seen[-2:] == ["generating", "fail"]
    assert data["failMsg"] == "content policy violation (simulated)"
    assert isinstance(data["failCode"], str) and data["failCode"]
    assert data["resultJson"] == "" and data["creditsConsumed"] is None


@pytest.mark.parametrize(
    ("field", "path", "needle"),
    [
        ("video_urls", "missing.mp4", "HTTP 404"),
        ("video_urls", "garbage.mp4", "decoded"),
        ("input_urls", "motion.mp4", "image"),
    ],
)
def test_unusable_inputs_fail_the_task(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, field: str, path: str, needle: str
) -> None:
    task_id = create(client, sandbox, task_body(media, input={field: [loopback_url(media, path)]}))
    data = poll_final(client, sandbox, task_id)
    assert data["state"] == "fail"
    assert f"{field}[0]" in data["failMsg"] and needle in data["failMsg"]


def test_too_short_video_for_orientation_limits(sandbox: Sandbox, media: ThreadingHTTPServer) -> None:
    from motionrelay_local.sandbox.kie import check_inputs
    from motionrelay_local.sandbox.render import ImageProbe, VideoProbe

    img = ImageProbe(480, 720, "png")
    check_inputs(img, VideoProbe(4.0, 360, 640, 15, True), "image")
    for vid, orientation in ((VideoProbe(2.0, 360, 640, 15, True), "video"),
                             (VideoProbe(12.0, 360, 640, 15, True), "image"),
                             (VideoProbe(31.0, 360, 640, 15, True), "video")):
        with pytest.raises(Exception, match="video_urls"):
            check_inputs(img, vid, orientation)
    with pytest.raises(Exception, match="300 px"):
        check_inputs(ImageProbe(200, 400, "png"), VideoProbe(4.0, 360, 640, 15, True), "video")


# --------------------------------------------------------------------------- callbacks


def _verify(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Independent check of Kie's documented scheme: base64(HMAC-SHA256(key, taskId.ts))."""
    payload = json.loads(body)
    ts = headers["X-Webhook-Timestamp"]
    assert ts.isdigit() and abs(int(ts) - time.time()) < 60
    expected = base64.b64encode(
        hmac.new(HMAC_KEY.encode(), f"{payload['taskId']}.{ts}".encode(), hashlib.sha256).digest()
    ).decode()
    assert hmac.compare_digest(headers["X-Webhook-Signature"], expected)
    return payload


def test_signed_callback_on_success(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, receiver: Any
) -> None:
    srv, handler = receiver
    task_id = create(client, sandbox, task_body(media, callBackUrl=loopback_url(srv, "hooks/kie?x=1")))
    sandbox.wait_task(task_id, timeout=15)
    assert len(handler.received) == 1
    got = handler.received[0]
    assert got["path"] == "/hooks/kie?x=1"
    assert got["headers"]["Content-Type"] == "application/json"
    payload = _verify(got["headers"], got["body"])
    assert payload["code"] == 200 and payload["msg"] == "success" and payload["taskId"] == task_id
    data = payload["data"]
    assert data["taskId"] == task_id and data["task_id"] == task_id
    assert data["callbackType"] == "task_completed" and data["state"] == "success"
    assert json.loads(data["resultJson"])["resultUrls"]
    # the callback mirrors recordInfo
    info = record_info(client, sandbox, task_id)
    assert {k: data[k] for k in info} == info

    sent = [c for c in sandbox.callbacks if c["task_id"] == task_id]
    assert len(sent) == 1 and sent[0]["status"] == 200 and sent[0]["provider"] == "kie"
    assert sent[0]["body"] == got["body"]
    assert sent[0]["headers"]["X-Webhook-Signature"] == got["headers"]["X-Webhook-Signature"]


def test_callback_on_failure_and_retry(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, receiver: Any
) -> None:
    srv, handler = receiver
    handler.statuses.extend([500])
    sandbox.configure(
        "kie", fail_task="generation failed (simulated)", callback_retry_delays=[0.05, 0.05, 0.05]
    )
    task_id = create(client, sandbox, task_body(media, callBackUrl=loopback_url(srv, "cb")))
    sandbox.wait_task(task_id, timeout=15)
    assert len(handler.received) == 2
    for got in handler.received:
        payload = _verify(got["headers"], got["body"])
        assert payload["code"] == 501 and payload["msg"] == "generation failed (simulated)"
        assert payload["data"]["state"] == "fail"
    sent = [c for c in sandbox.callbacks if c["task_id"] == task_id]
    assert [c["status"] for c in sent] == [500, 200]


def test_callback_gives_up_after_three_retries(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("kie", fail_task="x", callback_retry_delays=[0.01, 0.01, 0.01])
    dead = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    url = loopback_url(dead, "cb")
    dead.server_close()  # nothing listens there any more
    task_id = create(client, sandbox, task_body(media, callBackUrl=url))
    sandbox.wait_task(task_id, timeout=15)
    sent = [c for c in sandbox.callbacks if c["task_id"] == task_id]
    assert [c["status"] for c in sent] == [None] * 4
    assert all(c["error"] for c in sent)


def test_no_callback_when_knob_off(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, receiver: Any
) -> None:
    srv, handler = receiver
    sandbox.configure("kie", callbacks=False, fail_task="x")
    task_id = create(client, sandbox, task_body(media, callBackUrl=loopback_url(srv, "cb")))
    assert sandbox.wait_task(task_id, timeout=15).state == "fail"
    assert handler.received == []
    assert not [c for c in sandbox.callbacks if c["task_id"] == task_id]


def test_unsigned_callback_without_hmac_key(
    client: httpx.Client, media: ThreadingHTTPServer, receiver: Any
) -> None:
    srv, handler = receiver
    with Sandbox(api_keys={"kie": KEY}) as sb:
        defaults = sb.config("kie")
        assert defaults["callback_timeout"] == 15.0 and defaults["callback_retry_delays"] == [0.5, 1.0, 2.0]
        assert defaults["callbacks"] is True and defaults["fail_submit"] is None
        sb.configure("kie", state_seconds=0.02, fail_task="x")
        task_id = create(client, sb, task_body(media, callBackUrl=loopback_url(srv, "cb")))
        sb.wait_task(task_id, timeout=15)
    assert len(handler.received) == 1
    headers = {k.lower() for k in handler.received[0]["headers"]}
    assert "x-webhook-signature" not in headers and "x-webhook-timestamp" not in headers


# --------------------------------------------------------------------------- control endpoint


def test_control_endpoint(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    url = f"{sandbox.root_url}/_sandbox/kie/config"
    r = client.get(url)
    assert r.status_code == 200 and r.json()["state_seconds"] == STATE_SECONDS

    r = client.post(url, json={"latency": 0.2, "fail_task": "via http"})
    assert r.status_code == 200
    assert r.json()["latency"] == 0.2 and r.json()["fail_task"] == "via http"
    assert sandbox.config("kie")["fail_task"] == "via http"

    started = time.monotonic()
    task_id = create(client, sandbox, task_body(media))
    assert time.monotonic() - started >= 0.2
    assert sandbox.wait_task(task_id, timeout=15).state == "fail"

    assert client.post(url, json={"nope": 1}).status_code == 400
    assert client.post(url, json={"latency": -1}).status_code == 400
    assert client.post(url, json=[1]).status_code == 400
    assert client.get(f"{sandbox.root_url}/_sandbox/unknown/config").status_code == 404
    assert "kie" in client.get(f"{sandbox.root_url}/_sandbox").json()["providers"]


def test_python_configure_validates(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="unknown knob"):
        sandbox.configure("kie", bogus=True)
    with pytest.raises(ValueError, match="callbacks"):
        sandbox.configure("kie", callbacks="yes")
    with pytest.raises(KeyError):
        sandbox.configure("nobody", latency=0)
    assert sandbox.configure("kie", latency=0.0)["latency"] == 0.0


def test_request_counter_and_unknown_paths(sandbox: Sandbox, client: httpx.Client) -> None:
    before = sandbox.requests[("kie", "recordInfo")]
    client.get(kie(sandbox, "/api/v1/jobs/recordInfo"), params={"taskId": "t"}, headers=auth())
    assert sandbox.requests[("kie", "recordInfo")] == before + 1
    r = client.get(kie(sandbox, "/api/v1/nothing"), headers=auth())
    assert r.status_code == 404 and r.json()["code"] == 404
    r = client.get(kie(sandbox, "/api/v1/jobs/createTask"), headers=auth())
    assert r.status_code == 405
    assert client.get(kie(sandbox, "/files/task_nope.mp4")).status_code == 404
    assert client.get(kie(sandbox, "/files/..%2Fsecret.mp4")).status_code == 404
