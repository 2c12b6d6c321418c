"""The Novita sandbox, driven over loopback HTTP with raw httpx calls written from Novita's docs.

No gateway adapter is involved: these requests are what novita.ai/docs says a client sends
(model page, Task Result, Webhook, API Error Codes), and the assertions are what it says a
client gets back.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
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
from motionrelay_local.sandbox.novita import ValidationError, check_inputs, decode_image
from motionrelay_local.sandbox.render import ImageProbe, VideoProbe

KEY = "sandbox-novita-key"
SUBMIT = "/v3/async/kling-v2.6-pro-motion-control"
RESULT = "/v3/async/task-result"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
STATE_SECONDS = 0.05
FINAL = ("TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED")
DEFAULT_KNOBS: dict[str, Any] = {
    "latency": 0.0, "fail_submit": None, "fail_submit_times": None, "fail_submit_reason": None,
    "fail_task": None, "callbacks": True, "state_seconds": STATE_SECONDS, "callback_timeout": 5.0,
    "callback_retry_delays": [1.0, 2.0, 4.0, 8.0, 16.0],
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
    sb = Sandbox(api_keys={"novita": KEY}).start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def _reset_knobs(sandbox: Sandbox) -> None:
    sandbox.configure("novita", **DEFAULT_KNOBS)


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


def novita(sb: Sandbox, path: str) -> str:
    return sb.base_url("novita") + path


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def task_body(media: ThreadingHTTPServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "image": loopback_url(media, "character.png"),
        "video": loopback_url(media, "motion.mp4"),
        "prompt": "a cheerful character dancing",
        "negative_prompt": "blurry, distorted",
        "keep_original_sound": True,
        "character_orientation": "image",
    }
    body.update(overrides)
    return body


def submit(client: httpx.Client, sb: Sandbox, body: dict[str, Any]) -> str:
    r = client.post(novita(sb, SUBMIT), headers=auth(), json=body)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"task_id"}
    return r.json()["task_id"]


def task_result(client: httpx.Client, sb: Sandbox, task_id: str) -> dict[str, Any]:
    r = client.get(novita(sb, RESULT), params={"task_id": task_id},
                   headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def poll_final(client: httpx.Client, sb: Sandbox, task_id: str,
               seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = task_result(client, sb, task_id)
        if seen is not None:
            seen.append(body["task"])
        return body if body["task"]["status"] in FINAL else None

    return wait_until(check)


def assert_error(r: httpx.Response, status: int, reason: str, needle: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status and body["reason"] == reason
    assert isinstance(body["message"], str) and needle in body["message"]


# --------------------------------------------------------------------------- auth


def test_missing_key_is_missing_api_key_400(sandbox: Sandbox, client: httpx.Client,
                                            media: ThreadingHTTPServer) -> None:
    assert_error(client.post(novita(sandbox, SUBMIT), json=task_body(media)), 400, "MISSING_API_KEY")
    assert_error(client.get(novita(sandbox, RESULT), params={"task_id": "x"}), 400, "MISSING_API_KEY")


@pytest.mark.parametrize(
    "headers", [auth("wrong-key"), {"Authorization": KEY}, {"Authorization": "Basic " + KEY}],
    ids=["wrong-key", "no-scheme", "basic"],
)
def test_bad_keys_are_invalid_api_key_403(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer,
                                          headers: dict[str, str]) -> None:
    before = len(sandbox.tasks)
    assert_error(client.post(novita(sandbox, SUBMIT), headers=headers, json=task_body(media)),
                 403, "INVALID_API_KEY")
    assert_error(client.get(novita(sandbox, RESULT), params={"task_id": "x"}, headers=headers),
                 403, "INVALID_API_KEY")
    assert len(sandbox.tasks) == before


def test_post_without_json_content_type_is_refused(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post(novita(sandbox, SUBMIT), headers=auth(), content=b"{}")
    assert_error(r, 400, "INVALID_REQUEST_BODY", "Content-Type")


# --------------------------------------------------------------------------- submit validation


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b.pop("image"), "image"),
        (lambda b: b.pop("video"), "video"),
        (lambda b: b.pop("character_orientation"), "character_orientation"),
        (lambda b: b.update(image=""), "image"),
        (lambda b: b.update(character_orientation="sideways"), "character_orientation"),
        (lambda b: b.update(video="data:video/mp4;base64,AAAA"), "video"),
        (lambda b: b.update(video="ftp://files.example/v.mp4"), "video"),
        (lambda b: b.update(image="not base64 and not a url!"), "image"),
        (lambda b: b.update(image=["https://x.example/i.png"]), "image"),
        (lambda b: b.update(negative_prompt="x" * 2501), "negative_prompt"),
        (lambda b: b.update(prompt=42), "prompt"),
        (lambda b: b.update(keep_original_sound="yes"), "keep_original_sound"),
        (lambda b: b.update(extra=[]), "extra"),
        (lambda b: b.update(extra={"webhook": "https://hooks.example"}), "extra.webhook"),
        (lambda b: b.update(extra={"webhook": {"url": "not a url"}}), "extra.webhook.url"),
        (lambda b: b.update(extra={"webhook": {"url": "https://h.example", "test_mode": {"enabled": True}}}),
         "test_mode"),
    ],
    ids=[
        "no-image", "no-video", "no-orientation", "empty-image", "bad-orientation", "video-data-uri",
        "video-ftp", "image-garbage", "image-list", "long-negative-prompt", "prompt-not-string",
        "sound-not-bool", "extra-not-object", "webhook-not-object", "bad-webhook-url", "test-mode",
    ],
)
def test_validation_errors_are_invalid_request_body(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer,
    mutate: Callable[[dict[str, Any]], Any], needle: str,
) -> None:
    body = task_body(media)
    mutate(body)
    before = len(sandbox.tasks)
    assert_error(client.post(novita(sandbox, SUBMIT), headers=auth(), json=body), 400,
                 "INVALID_REQUEST_BODY", needle)
    assert len(sandbox.tasks) == before


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
def test_non_object_bodies_are_invalid(sandbox: Sandbox, client: httpx.Client, raw: bytes) -> None:
    r = client.post(novita(sandbox, SUBMIT), headers={**auth(), "Content-Type": "application/json"},
                    content=raw)
    assert_error(r, 400, "INVALID_REQUEST_BODY")


def test_optional_fields_and_limits(sandbox: Sandbox, client: httpx.Client,
                                    media: ThreadingHTTPServer) -> None:
    sandbox.configure("novita", fail_task="skip render")
    body = task_body(media, character_orientation="video")
    for key in ("prompt", "negative_prompt", "keep_original_sound"):
        body.pop(key)
    submit(client, sandbox, body)
    # 2500 characters of negative prompt is the documented maximum; the prompt has no limit
    task_id = submit(client, sandbox, task_body(media, negative_prompt="n" * 2500, prompt="p" * 5000,
                                                unknown_field={"ignored": True}))
    uuid.UUID(task_id)  # ids are UUIDs like the docs' examples


def test_base64_image_that_is_not_png_or_jpeg(sandbox: Sandbox, client: httpx.Client,
                                              media: ThreadingHTTPServer) -> None:
    gif = base64.b64encode(b"GIF89a" + b"\0" * 64).decode()
    r = client.post(novita(sandbox, SUBMIT), headers=auth(), json=task_body(media, image=gif))
    assert_error(r, 400, "INVALID_IMAGE_FORMAT")


def test_decode_image_limits() -> None:
    png = (SAMPLES / "character.png").read_bytes()
    assert decode_image(base64.b64encode(png).decode()) == png
    assert decode_image("data:image/png;base64," + base64.b64encode(png).decode()) == png
    too_big = b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024)
    with pytest.raises(ValidationError) as caught:
        decode_image(base64.b64encode(too_big).decode())
    assert caught.value.reason == "IMAGE_FILE_EXCEEDS_MAX_SIZE"
    with pytest.raises(ValidationError):
        decode_image("data:image/png,plain-not-base64")


# --------------------------------------------------------------------------- fail_submit


@pytest.mark.parametrize(("code", "status", "reason"), [
    (400, 400, "INVALID_REQUEST_BODY"),
    (401, 401, "INVALID_API_KEY"),
    (402, 400, "BILLING_BALANCE_NOT_ENOUGH"),
    (403, 403, "API_NOT_ALLOWED"),
    (404, 404, "API_NOT_FOUND"),
    (422, 400, "INVALID_REQUEST_BODY"),
    (429, 429, "RATE_LIMIT_EXCEEDED"),
    (500, 500, "CREATE_TASK_FAILED"),
    (418, 418, "UNKNOWN_ERROR"),
])
def test_fail_submit_uses_documented_names(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer,
                                           code: int, status: int, reason: str) -> None:
    sandbox.configure("novita", fail_submit=code)
    assert_error(client.post(novita(sandbox, SUBMIT), headers=auth(), json=task_body(media)), status, reason)


@pytest.mark.parametrize("code", [503, 504])
def test_fail_submit_gateway_errors_are_plain_text(sandbox: Sandbox, client: httpx.Client,
                                                   media: ThreadingHTTPServer, code: int) -> None:
    sandbox.configure("novita", fail_submit=code)
    r = client.post(novita(sandbox, SUBMIT), headers=auth(), json=task_body(media))
    assert r.status_code == code and r.headers["content-type"] == "text/plain"
    assert str(code) in r.text


def test_fail_submit_reason_and_times(sandbox: Sandbox, client: httpx.Client,
                                      media: ThreadingHTTPServer) -> None:
    sandbox.configure("novita", fail_submit=400, fail_submit_times=2, fail_submit_reason="ILLEGAL_PROMPT",
                      fail_task="skip render")
    url = novita(sandbox, SUBMIT)
    answers = [client.post(url, headers=auth(), json=task_body(media)) for _ in range(3)]
    assert_error(answers[0], 400, "ILLEGAL_PROMPT")
    assert_error(answers[1], 400, "ILLEGAL_PROMPT")
    assert answers[2].status_code == 200 and answers[2].json()["task_id"]
    assert sandbox.config("novita")["fail_submit"] is None
    with pytest.raises(ValueError, match="fail_submit_reason"):
        sandbox.configure("novita", fail_submit_reason="NOT_A_NOVITA_ERROR")


# --------------------------------------------------------------------------- task-result


def test_task_result_errors(sandbox: Sandbox, client: httpx.Client) -> None:
    assert_error(client.get(novita(sandbox, RESULT), headers=auth()), 400, "INVALID_REQUEST_BODY", "task_id")
    r = client.get(novita(sandbox, RESULT), params={"task_id": str(uuid.uuid4())}, headers=auth())
    assert_error(r, 404, "TASK_NOT_FOUND")


def test_success_lifecycle_and_playable_output(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, tmp_path: Path
) -> None:
    sandbox.configure("novita", state_seconds=0.15)  # wide enough for a 20 ms poll to see each state
    body = task_body(media)
    task_id = submit(client, sandbox, body)
    seen: list[dict[str, Any]] = []
    result = poll_final(client, sandbox, task_id, seen)

    statuses = [t["status"] for t in seen]
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == [
        "TASK_STATUS_QUEUED", "TASK_STATUS_PROCESSING", "TASK_STATUS_SUCCEED"]
    unfinished = [t for t in seen if t["status"] not in FINAL]
    assert all(isinstance(t["eta"], int) and t["eta"] >= 1 for t in unfinished)
    progress = [t["progress_percent"] for t in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert all(t["progress_percent"] == 0 for t in seen if t["status"] == "TASK_STATUS_QUEUED")
    assert all(0 <= t["progress_percent"] <= 99 for t in unfinished)

    task = result["task"]
    assert task["task_id"] == task_id and task["reason"] == "" and task["eta"] == 0
    assert task["task_type"]
    assert result["images"] == [] and result["audios"] == []
    [video] = result["videos"]
    assert video["video_type"] == "mp4" and video["video_url_ttl"] == "3600"
    assert video["video_url"].endswith(f"/files/{task_id}.mp4")
    debug = result["extra"]["debug_info"]
    assert json.loads(debug["request_info"]) == body
    assert int(debug["submit_time_ms"]) <= int(debug["execute_time_ms"]) <= int(debug["complete_time_ms"])
    assert "webhook" not in result["extra"]

    # the video link is a presigned-style URL: no auth header
    r = httpx.get(video["video_url"], trust_env=False)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    with av.open(str(out)) as c:
        assert c.streams.video and c.streams.audio
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (360, 640)  # never scaled up
        assert sum(1 for _ in c.decode(video=0)) > 0


def test_base64_image_without_sound(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, tmp_path: Path
) -> None:
    image = "data:image/png;base64," + base64.b64encode((SAMPLES / "character.png").read_bytes()).decode()
    task_id = submit(client, sandbox, task_body(media, image=image, keep_original_sound=False))
    result = poll_final(client, sandbox, task_id)
    assert result["task"]["status"] == "TASK_STATUS_SUCCEED", result["task"]["reason"]
    assert "base64" in json.loads(result["extra"]["debug_info"]["request_info"])["image"]
    out = tmp_path / "quiet.mp4"
    out.write_bytes(httpx.get(result["videos"][0]["video_url"], trust_env=False).content)
    with av.open(str(out)) as c:
        assert c.streams.video and not c.streams.audio


def test_states_before_completion_have_no_video(sandbox: Sandbox, client: httpx.Client,
                                                media: ThreadingHTTPServer) -> None:
    sandbox.configure("novita", state_seconds=0.3, fail_task="skip render")
    body = task_result(client, sandbox, submit(client, sandbox, task_body(media)))
    assert body["task"]["status"] == "TASK_STATUS_QUEUED" and body["task"]["progress_percent"] == 0
    assert body["videos"] == [] and body["extra"]["debug_info"]["complete_time_ms"] == ""


# --------------------------------------------------------------------------- failures


def test_fail_task_knob(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("novita", fail_task="content policy violation (simulated)")
    seen: list[dict[str, Any]] = []
    result = poll_final(client, sandbox, submit(client, sandbox, task_body(media)), seen)
    assert seen[-2]["status"] == "TASK_STATUS_PROCESSING"
    task = result["task"]
    assert task["status"] == "TASK_STATUS_FAILED" and task["reason"] == "content policy violation (simulated)"
    assert task["progress_percent"] == 0 and result["videos"] == []


@pytest.mark.parametrize(
    ("field", "path", "needle"),
    [("video", "missing.mp4", "HTTP 404"), ("video", "garbage.mp4", "decoded"),
     ("image", "motion.mp4", "image")],
)
def test_unusable_inputs_fail_the_task(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer,
                                       field: str, path: str, needle: str) -> None:
    task_id = submit(client, sandbox, task_body(media, **{field: loopback_url(media, path)}))
    result = poll_final(client, sandbox, task_id)
    assert result["task"]["status"] == "TASK_STATUS_FAILED"
    assert result["task"]["reason"].startswith(field) and needle in result["task"]["reason"]


def test_documented_input_limits() -> None:
    img, vid = ImageProbe(480, 720, "png"), VideoProbe(4.0, 360, 640, 15, True)
    check_inputs(img, vid, "image")
    check_inputs(ImageProbe(300, 750, "jpeg"), VideoProbe(30.0, 300, 300, 25, False), "video")
    bad = [
        (ImageProbe(480, 720, "gif"), vid, "image", "image"),
        (ImageProbe(299, 720, "png"), vid, "image", "300px"),
        (ImageProbe(300, 760, "png"), vid, "image", "aspect"),
        (img, VideoProbe(4.0, 290, 640, 15, True), "image", "300px"),
        (img, VideoProbe(4.0, 300, 800, 15, True), "image", "aspect"),
        (img, VideoProbe(2.0, 360, 640, 15, True), "video", "3 seconds"),
        (img, VideoProbe(12.0, 360, 640, 15, True), "image", "10 seconds"),
        (img, VideoProbe(31.0, 360, 640, 15, True), "video", "30 seconds"),
    ]
    for image, video, orientation, needle in bad:
        with pytest.raises(Exception, match=needle):
            check_inputs(image, video, orientation)


# --------------------------------------------------------------------------- webhooks


def test_webhook_on_success_is_an_unsigned_async_task_result(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, receiver: Any
) -> None:
    srv, handler = receiver
    hook = loopback_url(srv, "hooks/novita?token=abc")
    task_id = submit(client, sandbox, task_body(media, extra={"webhook": {"url": hook}}))
    sandbox.wait_task(task_id, timeout=15)
    assert len(handler.received) == 1
    got = handler.received[0]
    assert got["path"] == "/hooks/novita?token=abc"
    assert got["headers"]["Content-Type"] == "application/json"
    assert not [h for h in got["headers"] if "signature" in h.lower() or "timestamp" in h.lower()]
    event = json.loads(got["body"])
    assert set(event) == {"event_type", "payload"} and event["event_type"] == "ASYNC_TASK_RESULT"
    # the payload is exactly the Task Result body, webhook echoed in extra as in the docs' example
    assert event["payload"] == task_result(client, sandbox, task_id)
    assert event["payload"]["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert event["payload"]["extra"]["webhook"] == {"url": hook}
    sent = [c for c in sandbox.callbacks if c["task_id"] == task_id]
    assert len(sent) == 1 and sent[0]["status"] == 200 and sent[0]["provider"] == "novita"


def test_webhook_retries_until_any_2xx(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, receiver: Any
) -> None:
    srv, handler = receiver
    handler.statuses.extend([500, 404, 204])
    sandbox.configure("novita", fail_task="generation failed (simulated)", callback_retry_delays=[0.02] * 5)
    task_id = submit(client, sandbox, task_body(media, extra={"webhook": {"url": loopback_url(srv, "cb")}}))
    sandbox.wait_task(task_id, timeout=15)
    assert len(handler.received) == 3  # 204 is a success: no fourth attempt
    for got in handler.received:
        payload = json.loads(got["body"])["payload"]
        assert payload["task"]["status"] == "TASK_STATUS_FAILED"
        assert payload["task"]["reason"] == "generation failed (simulated)"
    assert [c["status"] for c in sandbox.callbacks if c["task_id"] == task_id] == [500, 404, 204]


def test_webhook_gives_up_after_five_retries(sandbox: Sandbox, client: httpx.Client,
                                             media: ThreadingHTTPServer) -> None:
    sandbox.configure("novita", fail_task="x", callback_retry_delays=[0.01] * 5)
    dead = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    url = loopback_url(dead, "cb")
    dead.server_close()  # nothing listens there any more
    task_id = submit(client, sandbox, task_body(media, extra={"webhook": {"url": url}}))
    sandbox.wait_task(task_id, timeout=15)
    sent = [c for c in sandbox.callbacks if c["task_id"] == task_id]
    assert [c["status"] for c in sent] == [None] * 6 and all(c["error"] for c in sent)


def test_no_webhook_when_knob_off(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer,
                                  receiver: Any) -> None:
    srv, handler = receiver
    sandbox.configure("novita", callbacks=False, fail_task="x")
    task_id = submit(client, sandbox, task_body(media, extra={"webhook": {"url": loopback_url(srv, "cb")}}))
    assert sandbox.wait_task(task_id, timeout=15).state == "TASK_STATUS_FAILED"
    assert handler.received == []
    assert not [c for c in sandbox.callbacks if c["task_id"] == task_id]


def test_documented_webhook_defaults() -> None:
    with Sandbox(api_keys={"novita": KEY}) as sb:
        defaults = sb.config("novita")
    assert defaults["callback_timeout"] == 5.0  # "currently set to 5 seconds"
    assert len(defaults["callback_retry_delays"]) == 5  # "retry up to five times"
    assert defaults["callbacks"] is True and defaults["fail_submit_reason"] is None


# --------------------------------------------------------------------------- routing


def test_request_counter_and_unknown_paths(sandbox: Sandbox, client: httpx.Client) -> None:
    before = sandbox.requests[("novita", "task-result")]
    client.get(novita(sandbox, RESULT), params={"task_id": "t"}, headers=auth())
    assert sandbox.requests[("novita", "task-result")] == before + 1
    assert_error(client.get(novita(sandbox, "/v3/async/nothing"), headers=auth()), 404, "API_NOT_FOUND")
    assert_error(client.get(novita(sandbox, SUBMIT), headers=auth()), 404, "API_NOT_FOUND")
    assert_error(client.get(novita(sandbox, "/_inline/unknown-token")), 404, "API_NOT_FOUND")
    assert client.get(novita(sandbox, "/files/nope.mp4")).status_code == 404
    assert "novita" in client.get(f"{sandbox.root_url}/_sandbox").json()["providers"]
