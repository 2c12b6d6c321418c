"""The AI/ML API sandbox, driven over loopback HTTP with raw httpx calls written from its docs.

No gateway adapter is involved: these requests are what docs.aimlapi.com says a client sends
(`POST /v2/video/generations`, `GET /v2/video/generations?generation_id=`), and the assertions
are what it says a client gets back.
"""

from __future__ import annotations

import base64
import re
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from motionrelay_local.loopback import QuietFiles, loopback_url, serve, wait_until
from motionrelay_local.sandbox import Sandbox

KEY = "sandbox-aimlapi-key"
MODEL = "klingai/video-v2-6-motion-control"
MODEL_PRO_ONLY = "klingai/video-v2-6-pro-motion-control"
PATH = "/v2/video/generations"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
STATE_SECONDS = 0.05
DEFAULT_KNOBS: dict[str, Any] = {
    "latency": 0.0, "fail_submit": None, "fail_submit_times": None, "fail_task": None,
    "state_seconds": STATE_SECONDS, "waiting": False,
}
ERROR_KEYS = {"message", "path", "requestId", "statusCode", "timestamp"}


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
    sb = Sandbox(api_keys={"aimlapi": KEY}).start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def _reset_knobs(sandbox: Sandbox) -> None:
    sandbox.configure("aimlapi", **DEFAULT_KNOBS)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def api(sb: Sandbox) -> str:
    return sb.base_url("aimlapi") + PATH


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def gen_body(media: ThreadingHTTPServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "image_url": loopback_url(media, "character.png"),
        "video_url": loopback_url(media, "motion.mp4"),
        "prompt": "At 00:03, a brightly colored parrot flies in from the left",
        "character_orientation": "image",
        "keep_audio": True,
        "mode": "std",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(client: httpx.Client, sb: Sandbox, body: dict[str, Any]) -> str:
    r = client.post(api(sb), headers=auth(), json=body)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def fetch(client: httpx.Client, sb: Sandbox, gen_id: str) -> dict[str, Any]:
    r = client.get(api(sb), params={"generation_id": gen_id}, headers=auth())
    assert r.status_code == 200, r.text
    return r.json()


def poll_final(
    client: httpx.Client, sb: Sandbox, gen_id: str, seen: list[str] | None = None
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        data = fetch(client, sb, gen_id)
        if seen is not None and (not seen or seen[-1] != data["status"]):
            seen.append(data["status"])
        return data if data["status"] in ("completed", "error") else None

    return wait_until(check)


def assert_error(r: httpx.Response, status: int, needle: str = "") -> dict[str, Any]:
    """The documented error body: message, path, requestId, statusCode, timestamp."""
    assert r.status_code == status, r.text
    payload = r.json()
    assert set(payload) == ERROR_KEYS
    assert payload["statusCode"] == status and payload["path"] == PATH
    assert re.fullmatch(r"[0-9a-f-]{36}", payload["requestId"])
    assert datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
    assert needle in payload["message"], payload["message"]
    return payload


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong-key"), {"Authorization": KEY}, {"Authorization": "Basic " + KEY}],
    ids=["missing", "wrong-key", "no-scheme", "basic"],
)
def test_unauthorized_requests_get_the_documented_401(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, headers: dict[str, str]
) -> None:
    before = len(sandbox.tasks)
    assert_error(client.post(api(sandbox), headers=headers, json=gen_body(media)), 401, "valid API key")
    assert_error(client.get(api(sandbox), params={"generation_id": "x"}, headers=headers), 401, "API key")
    assert len(sandbox.tasks) == before


# --------------------------------------------------------------------------- create


def test_create_answers_id_and_queued(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("aimlapi", fail_task="not rendering in this test")
    r = client.post(api(sandbox), headers=auth(), json=gen_body(media))
    assert r.status_code == 200
    payload = r.json()
    assert set(payload) == {"id", "status"} and payload["status"] == "queued"
    assert re.fullmatch(r"[A-Za-z0-9]{21}", payload["id"])


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "klingai/video-v3-motion-control"}, "model: Invalid enum value"),
        ({"model": None}, "model: Required"),
        ({"image_url": None}, "image_url: Required"),
        ({"video_url": None}, "video_url: Required"),
        ({"image_url": 42}, "image_url: Expected string"),
        ({"image_url": ""}, "image_url"),
        ({"image_url": "not base64 at all!"}, "image_url: invalid Base64"),
        ({"video_url": base64.b64encode(b"\x00\x00\x00 ftypmp42").decode()}, "video_url: Invalid url"),
        ({"video_url": "data:video/mp4,plain"}, "video_url: data URI must be base64"),
        ({"character_orientation": "sideways"}, "character_orientation: Invalid enum value"),
        ({"mode": "1080p"}, "mode: Invalid enum value. Expected 'std' | 'pro'"),
        ({"prompt": ["dance"]}, "prompt: Expected string"),
        ({"keep_audio": "false"}, "keep_audio: Expected boolean"),
        ({"webhook_url": "https://example.com/hook"}, "Unrecognized key(s) in object: 'webhook_url'"),
        ({"model": MODEL_PRO_ONLY, "mode": "pro"}, "Unrecognized key(s) in object: 'mode'"),
    ],
    ids=[
        "unknown-model", "no-model", "no-image", "no-video", "image-not-string", "empty-image",
        "bad-base64-image", "bare-base64-video", "data-uri-not-base64", "bad-orientation", "bad-mode",
        "prompt-not-string", "keep-audio-not-bool", "webhook-field", "mode-with-older-model",
    ],
)
def test_validation_errors_are_400_body_validation(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, body: dict[str, Any], needle: str
) -> None:
    before = len(sandbox.tasks)
    payload = gen_body(media)
    payload.update(body)
    payload = {k: v for k, v in payload.items() if v is not None}
    msg = assert_error(client.post(api(sandbox), headers=auth(), json=payload), 400, needle)["message"]
    assert msg.startswith("Body validation error!")
    assert len(sandbox.tasks) == before


def test_non_json_bodies_are_400(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post(api(sandbox), headers={**auth(), "Content-Type": "application/json"}, content=b"{nope")
    assert_error(r, 400, "Body validation error!")
    r = client.post(api(sandbox), headers={**auth(), "Content-Type": "text/plain"}, content=b"{}")
    assert_error(r, 400, "model: Required")


@pytest.mark.parametrize("model", [MODEL, MODEL_PRO_ONLY])
def test_optional_fields_may_be_left_out(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, model: str
) -> None:
    sandbox.configure("aimlapi", fail_task="skip render")
    gen_id = create(client, sandbox, {"model": model, "image_url": loopback_url(media, "character.png"),
                                      "video_url": loopback_url(media, "motion.mp4")})
    assert sandbox.tasks[gen_id].extra["mode"] == ("std" if model == MODEL else "pro")


# --------------------------------------------------------------------------- fail_submit


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        (400, "Body validation error!"), (401, "valid API key"), (403, "run out of credits"),
        (404, "Not Found"), (429, "Too Many Requests"), (500, "try again later"),
        (502, "Bad Gateway"), (503, "Service unavailable"), (504, "Generation timeout"),
    ],
)
def test_fail_submit_answers_the_documented_error(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, code: int, needle: str
) -> None:
    sandbox.configure("aimlapi", fail_submit=code)
    before = len(sandbox.tasks)
    r = client.post(api(sandbox), headers=auth(), json=gen_body(media))
    assert_error(r, code, needle)
    assert (r.headers.get("retry-after") == "1") is (code == 429)
    assert len(sandbox.tasks) == before


def test_fail_submit_times_then_recovers(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("aimlapi", fail_submit=503, fail_submit_times=2, fail_task="skip render")
    codes = [client.post(api(sandbox), headers=auth(), json=gen_body(media)).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert sandbox.config("aimlapi")["fail_submit"] is None


# --------------------------------------------------------------------------- fetch


def test_fetch_errors(sandbox: Sandbox, client: httpx.Client) -> None:
    assert_error(client.get(api(sandbox), headers=auth()), 400, "generation_id")
    r = client.get(api(sandbox), params={"generation_id": "NVOeetazzu2Xlca6ghTMx"}, headers=auth())
    assert_error(r, 404, "not found")


def _playable(url: str, tmp_path: Path) -> tuple[int, int, bool]:
    r = httpx.get(url, trust_env=False)  # a public CDN-style link: no auth header
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    with av.open(str(out)) as c:
        vs = c.streams.video[0]
        assert sum(1 for _ in c.decode(video=0)) > 0
        return vs.codec_context.width, vs.codec_context.height, bool(c.streams.audio)


def test_success_lifecycle_with_usage_and_playable_output(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, tmp_path: Path
) -> None:
    sandbox.configure("aimlapi", state_seconds=0.15)  # wide enough for a 20 ms poll to see each state
    started = time.monotonic()
    gen_id = create(client, sandbox, gen_body(media, keep_audio=False))
    seen: list[str] = []
    data = poll_final(client, sandbox, gen_id, seen)
    assert seen == ["queued", "generating", "completed"]
    assert time.monotonic() - started >= 3 * 0.15

    assert set(data) == {"id", "status", "video", "error", "meta"}
    assert data["id"] == gen_id and data["error"] is None
    assert data["video"]["url"] == f"{sandbox.base_url('aimlapi')}/files/{gen_id}.mp4"
    usage = data["meta"]["usage"]
    assert usage["credits_used"] > 0 and usage["usd_spent"] == pytest.approx(4 * 0.07)
    assert _playable(data["video"]["url"], tmp_path) == (360, 640, False)  # keep_audio=false: no audio


def test_older_model_renders_pro_with_audio(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, tmp_path: Path
) -> None:
    body = gen_body(media, model=MODEL_PRO_ONLY, mode=None, keep_audio=None, character_orientation=None)
    data = poll_final(client, sandbox, create(client, sandbox, body))
    assert data["status"] == "completed"
    assert data["meta"]["usage"]["usd_spent"] == pytest.approx(4 * 0.112)
    assert _playable(data["video"]["url"], tmp_path) == (360, 640, True)  # never scaled up


def test_before_completion_nothing_is_filled_in(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("aimlapi", state_seconds=0.3, fail_task="skip render")
    data = fetch(client, sandbox, create(client, sandbox, gen_body(media)))
    assert data["status"] == "queued"
    assert data["video"] is None and data["error"] is None and data["meta"] is None


def test_waiting_knob_reports_waiting_first(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("aimlapi", waiting=True, state_seconds=0.15, fail_task="skip render")
    r = client.post(api(sandbox), headers=auth(), json=gen_body(media))
    assert r.json()["status"] == "waiting"
    seen: list[str] = ["waiting"]
    poll_final(client, sandbox, r.json()["id"], seen)
    assert seen == ["waiting", "queued", "generating", "error"]


def test_inline_base64_image_and_data_uri_video(
    sandbox: Sandbox, client: httpx.Client, tmp_path: Path
) -> None:
    image = base64.b64encode((SAMPLES / "character.png").read_bytes()).decode()
    video = "data:video/mp4;base64," + base64.b64encode((SAMPLES / "motion.mp4").read_bytes()).decode()
    gen_id = create(client, sandbox, {"model": MODEL, "image_url": image, "video_url": video})
    data = poll_final(client, sandbox, gen_id)
    assert data["status"] == "completed", data["error"]
    sandbox.wait_task(gen_id)
    assert _playable(data["video"]["url"], tmp_path)[:2] == (360, 640)
    # the decoded inputs are gone once the task ended
    leftovers = list(sandbox.ctx.files_dir("aimlapi").glob(f"{gen_id}.input-*"))
    assert leftovers == []


# --------------------------------------------------------------------------- failures


def test_fail_task_knob(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("aimlapi", fail_task="content policy violation (simulated)")
    seen: list[str] = []
    data = poll_final(client, sandbox, create(client, sandbox, gen_body(media)), seen)
    assert seen[-2:] == ["generating", "error"]
    assert data["error"] == {"name": "GenerationError", "message": "content policy violation (simulated)"}
    assert data["video"] is None and data["meta"] is None


@pytest.mark.parametrize(
    ("field", "path", "needle"),
    [
        ("video_url", "missing.mp4", "HTTP 404"),
        ("video_url", "garbage.mp4", "decoded"),
        ("image_url", "motion.mp4", "image"),
    ],
)
def test_unusable_inputs_fail_the_generation(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, field: str, path: str, needle: str
) -> None:
    body = gen_body(media, **{field: loopback_url(media, path)})
    data = poll_final(client, sandbox, create(client, sandbox, body))
    assert data["status"] == "error" and data["error"]["name"] == "InvalidInputError"
    assert field in data["error"]["message"] and needle in data["error"]["message"]


def test_input_limits() -> None:
    from motionrelay_local.sandbox.aimlapi import check_inputs
    from motionrelay_local.sandbox.render import ImageProbe, VideoProbe

    img = ImageProbe(480, 720, "png")
    check_inputs(img, VideoProbe(10.0, 360, 640, 15, True), "image")
    check_inputs(img, VideoProbe(30.0, 360, 640, 15, True), "video")
    for vid, orientation in ((VideoProbe(2.0, 360, 640, 15, True), "video"),
                             (VideoProbe(12.0, 360, 640, 15, True), "image"),
                             (VideoProbe(31.0, 360, 640, 15, True), "video")):
        with pytest.raises(Exception, match="video_url"):
            check_inputs(img, vid, orientation)
    with pytest.raises(Exception, match="300 px"):
        check_inputs(ImageProbe(200, 400, "png"), VideoProbe(4.0, 360, 640, 15, True), "video")
    with pytest.raises(Exception, match="jpeg/png"):
        check_inputs(ImageProbe(480, 720, "gif"), VideoProbe(4.0, 360, 640, 15, True), "video")


# --------------------------------------------------------------------------- no callbacks, routing


def test_no_callbacks_are_ever_sent(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    assert sandbox.config("aimlapi")["callbacks"] is False
    sandbox.configure("aimlapi", callbacks=True, fail_task="x")  # even with the knob on: nothing to call
    gen_id = create(client, sandbox, gen_body(media))
    assert sandbox.wait_task(gen_id, timeout=15).state == "error"
    assert not [c for c in sandbox.callbacks if c["task_id"] == gen_id]


def test_request_counter_and_unknown_paths(sandbox: Sandbox, client: httpx.Client) -> None:
    before = sandbox.requests[("aimlapi", "fetch")]
    client.get(api(sandbox), params={"generation_id": "x"}, headers=auth())
    assert sandbox.requests[("aimlapi", "fetch")] == before + 1
    r = client.get(sandbox.base_url("aimlapi") + "/v2/video/nothing", headers=auth())
    assert r.status_code == 404 and set(r.json()) == ERROR_KEYS and r.json()["statusCode"] == 404
    assert client.get(sandbox.base_url("aimlapi") + "/files/nope.mp4").status_code == 404
    with pytest.raises(ValueError, match="waiting"):
        sandbox.configure("aimlapi", waiting="yes")
