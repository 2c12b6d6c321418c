"""The Pixazo sandbox, driven over loopback HTTP with raw httpx calls written from Pixazo's page.

No gateway adapter is involved: these requests are what the Pixazo model page says a client
sends (three headers, POST for both submit and result), and the assertions are what it says
a client gets back.
"""

from __future__ import annotations

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

from motionrelay_local.loopback import QuietFiles, loopback_url, serve, wait_until
from motionrelay_local.sandbox import Sandbox

KEY = "sandbox-pixazo-key"
API = "/kling-video-v2-6-standard-motion-control/v1/kling-video-v2-6-standard-motion-control"
SUBMIT = API + "-request"
RESULT = API + "-request-result"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
STATE_SECONDS = 0.05
DEFAULT_KNOBS: dict[str, Any] = {
    "latency": 0.0, "fail_submit": None, "fail_submit_times": None, "fail_task": None,
    "state_seconds": STATE_SECONDS,
}
DOCUMENTED_ERRORS = {
    400: "Invalid request parameters",
    401: "Invalid or missing authentication",
    403: "Access denied for this operation",
    404: "Endpoint not found",
    429: "Rate limit exceeded, please retry later",
    500: "An unexpected error occurred, please try again later",
}



# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadingHTTPServer]:
    root = tmp_path_factory.mktemp("media")
    for name in ("character.png", "motion.mp4"):
        shutil.copy(SAMPLES / name, root / name)
    srv = serve(partial(QuietFiles, directory=str(root)))
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(api_keys={"pixazo": KEY}).start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def _reset_knobs(sandbox: Sandbox) -> None:
    sandbox.configure("pixazo", **DEFAULT_KNOBS)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def url(sb: Sandbox, path: str) -> str:
    return sb.base_url("pixazo") + path


def headers(key: str | None = KEY) -> dict[str, str]:
    out = {"Content-Type": "application/json", "Cache-Control": "no-cache"}
    if key is not None:
        out["Ocp-Apim-Subscription-Key"] = key
    return out


def submit_body(media: ThreadingHTTPServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "image_url": loopback_url(media, "character.png"),
        "video_url": loopback_url(media, "motion.mp4"),
        "character_orientation": "video",
        "keep_original_sound": True,
    }
    body.update(overrides)
    return body


def submit(client: httpx.Client, sb: Sandbox, body: dict[str, Any]) -> str:
    r = client.post(url(sb, SUBMIT), headers=headers(), json=body)
    assert r.status_code == 200, r.text
    payload = r.json()
    assert payload["status"] == "IN_QUEUE" and payload["message"]
    return payload["request_id"]


def result(client: httpx.Client, sb: Sandbox, request_id: str) -> dict[str, Any]:
    r = client.post(url(sb, RESULT), headers=headers(), json={"request_id": request_id})
    assert r.status_code == 200, r.text
    return r.json()


def poll_final(client: httpx.Client, sb: Sandbox, request_id: str,
               seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        data = result(client, sb, request_id)
        if seen is not None:
            seen.append(data)
        return data if data["status"] in ("COMPLETED", "FAILED") else None

    return wait_until(check)


# --------------------------------------------------------------------------- auth and headers


@pytest.mark.parametrize("key", [None, "wrong-key", ""], ids=["missing", "wrong", "empty"])
@pytest.mark.parametrize("path", [SUBMIT, RESULT], ids=["submit", "result"])
def test_missing_or_wrong_subscription_key_is_401(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, key: str | None, path: str
) -> None:
    before = len(sandbox.tasks)
    r = client.post(url(sandbox, path), headers=headers(key), json=submit_body(media))
    assert r.status_code == 401
    assert r.json() == {"error": "Invalid or missing authentication"}
    assert len(sandbox.tasks) == before


def test_bearer_auth_is_not_pixazos(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    r = client.post(url(sandbox, SUBMIT), headers={**headers(None), "Authorization": f"Bearer {KEY}"},
                    json=submit_body(media))
    assert r.status_code == 401


@pytest.mark.parametrize("drop", ["Cache-Control", "Content-Type"])
@pytest.mark.parametrize("path", [SUBMIT, RESULT], ids=["submit", "result"])
def test_documented_headers_are_required(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, drop: str, path: str
) -> None:
    sent = {k: v for k, v in headers().items() if k != drop}
    before = len(sandbox.tasks)
    r = client.post(url(sandbox, path), headers=sent, content=json.dumps(submit_body(media)).encode())
    assert r.status_code == 400
    assert r.json()["error"].startswith("Invalid request parameters") and drop in r.json()["error"]
    assert len(sandbox.tasks) == before


# --------------------------------------------------------------------------- submit validation


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda b: b.pop("image_url"), "image_url"),
        (lambda b: b.pop("video_url"), "video_url"),
        (lambda b: b.update(image_url="data:image/png;base64,AAAA"), "image_url"),
        (lambda b: b.update(video_url=["http://x/v.mp4"]), "video_url"),
        (lambda b: b.update(character_orientation="sideways"), "character_orientation"),
        (lambda b: b.update(keep_original_sound="yes"), "keep_original_sound"),
        (lambda b: b.update(prompt="dance"), "prompt"),
    ],
    ids=["no-image", "no-video", "data-uri", "video-array", "bad-orientation", "sound-not-bool", "prompt"],
)
def test_validation_errors_are_400_with_an_error_string(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer,
    mutate: Callable[[dict[str, Any]], Any], needle: str,
) -> None:
    body = submit_body(media)
    mutate(body)
    before = len(sandbox.tasks)
    r = client.post(url(sandbox, SUBMIT), headers=headers(), json=body)
    assert r.status_code == 400
    payload = r.json()
    assert set(payload) == {"error"} and needle in payload["error"]
    assert len(sandbox.tasks) == before


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
def test_malformed_bodies_are_400(sandbox: Sandbox, client: httpx.Client, raw: bytes) -> None:
    r = client.post(url(sandbox, SUBMIT), headers=headers(), content=raw)
    assert r.status_code == 400 and "error" in r.json()


def test_optional_fields_default(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("pixazo", fail_task="skip render")
    body = submit_body(media)
    del body["character_orientation"], body["keep_original_sound"]
    request_id = submit(client, sandbox, body)
    uuid.UUID(request_id)  # the page's example id is a (masked) UUID
    job = sandbox.tasks[request_id]
    assert job.request["character_orientation"] == "video" and job.request["keep_original_sound"] is True


# --------------------------------------------------------------------------- fail_submit


@pytest.mark.parametrize("code", sorted(DOCUMENTED_ERRORS))
def test_fail_submit_answers_the_documented_bodies(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, code: int
) -> None:
    sandbox.configure("pixazo", fail_submit=code)
    r = client.post(url(sandbox, SUBMIT), headers=headers(), json=submit_body(media))
    assert r.status_code == code
    assert r.json() == {"error": DOCUMENTED_ERRORS[code]}


def test_fail_submit_undocumented_code_and_recovery(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("pixazo", fail_submit=503, fail_submit_times=2, fail_task="skip render")
    codes = [client.post(url(sandbox, SUBMIT), headers=headers(), json=submit_body(media)).status_code
             for _ in range(3)]
    assert codes == [503, 503, 200]
    assert sandbox.config("pixazo")["fail_submit"] is None


# --------------------------------------------------------------------------- result endpoint


def test_result_errors(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post(url(sandbox, RESULT), headers=headers(), json={})
    assert r.status_code == 400 and "request_id" in r.json()["error"]
    r = client.post(url(sandbox, RESULT), headers=headers(), json={"request_id": str(uuid.uuid4())})
    assert r.status_code == 404 and r.json() == {"error": "Request not found"}


def test_result_is_a_post_only(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.get(url(sandbox, RESULT), headers=headers(), params={"request_id": "x"})
    assert r.status_code == 404 and r.json() == {"error": "Endpoint not found"}
    assert client.post(url(sandbox, "/v1/other"), headers=headers(), json={}).status_code == 404


def test_success_lifecycle_and_playable_output(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, tmp_path: Path
) -> None:
    sandbox.configure("pixazo", state_seconds=0.15)  # wide enough for a 10 ms poll to see each state
    request_id = submit(client, sandbox, submit_body(media, character_orientation="image"))
    seen: list[dict[str, Any]] = []
    data = poll_final(client, sandbox, request_id, seen)
    states = [s["status"] for s in seen]
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == [
        "IN_QUEUE", "IN_PROGRESS", "COMPLETED"]

    queued = next(s for s in seen if s["status"] == "IN_QUEUE")
    assert queued == {"status": "IN_QUEUE", "request_id": request_id}
    running = [s for s in seen if s["status"] == "IN_PROGRESS"]
    for snap in running:
        assert isinstance(snap["progress_percent"], int) and 0 <= snap["progress_percent"] <= 99
        remaining = snap["estimated_remaining_seconds"]
        assert isinstance(remaining, int) and remaining >= 0
    percents = [s["progress_percent"] for s in running]
    assert percents == sorted(percents)

    assert data["request_id"] == request_id
    assert data["output_url"].endswith(f"/files/{request_id}.mp4")
    assert data["content_type"] == "video/mp4" and data["has_audio"] is True
    assert data["duration_seconds"] == pytest.approx(4.0, abs=0.2)
    assert (data["width"], data["height"]) == (360, 640)  # 720p cap: a 640 px source is not upscaled
    assert "error_message" not in data and "progress_percent" not in data

    r = httpx.get(data["output_url"], trust_env=False)  # public link: no key
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    with av.open(str(out)) as c:
        assert c.streams.video and c.streams.audio
        assert sum(1 for _ in c.decode(video=0)) > 0


def test_keep_original_sound_false_gives_a_silent_output(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    request_id = submit(client, sandbox, submit_body(media, keep_original_sound=False))
    data = poll_final(client, sandbox, request_id)
    assert data["status"] == "COMPLETED" and data["has_audio"] is False


# --------------------------------------------------------------------------- failures


def test_fail_task_knob(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("pixazo", fail_task="content policy violation (simulated)")
    request_id = submit(client, sandbox, submit_body(media))
    data = poll_final(client, sandbox, request_id)
    assert data == {"status": "FAILED", "request_id": request_id,
                    "error_message": "content policy violation (simulated)"}


@pytest.mark.parametrize("field,path,needle", [
    ("video_url", "missing.mp4", "HTTP 404"),
    ("image_url", "motion.mp4", "image"),
])
def test_unusable_inputs_fail_the_request(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, field: str, path: str, needle: str
) -> None:
    request_id = submit(client, sandbox, submit_body(media, **{field: loopback_url(media, path)}))
    data = poll_final(client, sandbox, request_id)
    assert data["status"] == "FAILED"
    assert field in data["error_message"] and needle in data["error_message"]


def test_documented_and_upstream_input_limits() -> None:
    from motionrelay_local.sandbox.pixazo import check_inputs
    from motionrelay_local.sandbox.render import ImageProbe, VideoProbe

    img = ImageProbe(480, 720, "png")
    for orientation in ("video", "image"):
        check_inputs(img, VideoProbe(10.0, 360, 640, 25, True), orientation)
        # "under 10 seconds" holds for both orientations (not the upstream 30 s for video)
        with pytest.raises(Exception, match="video_url.*under 10 s"):
            check_inputs(img, VideoProbe(12.0, 360, 640, 25, True), orientation)
    with pytest.raises(Exception, match="minimum is 3 s"):
        check_inputs(img, VideoProbe(2.0, 360, 640, 25, True), "video")
    with pytest.raises(Exception, match="JPEG/PNG"):
        check_inputs(ImageProbe(480, 720, "gif"), VideoProbe(4.0, 360, 640, 25, True), "video")
    with pytest.raises(Exception, match="300 px"):
        check_inputs(ImageProbe(200, 400, "jpeg"), VideoProbe(4.0, 360, 640, 25, True), "video")


# --------------------------------------------------------------------------- plumbing


def test_registered_counted_and_configurable(sandbox: Sandbox, client: httpx.Client) -> None:
    assert "pixazo" in client.get(f"{sandbox.root_url}/_sandbox").json()["providers"]
    before = sandbox.requests[("pixazo", "result")]
    client.post(url(sandbox, RESULT), headers=headers(), json={"request_id": "nope"})
    assert sandbox.requests[("pixazo", "result")] == before + 1
    fresh = Sandbox(api_keys={})
    try:
        defaults = fresh.config("pixazo")
    finally:
        fresh.stop()
    assert defaults["fail_submit"] is None and defaults["state_seconds"] == 0.5
    assert client.get(url(sandbox, "/files/nope.mp4")).status_code == 404
