"""The VibeDream sandbox, driven over loopback HTTP with raw httpx calls written from VibeDream's page.

No gateway adapter is involved: these requests are the page's curl examples (Bearer key,
generate then poll the prediction), and the assertions are what it says a client gets back.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
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

KEY = "sandbox-vibedream-key"
MODEL = "kling-v2.6-pro-motion"
GENERATE = f"/api/v1/models/{MODEL}/generate"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
STATE_SECONDS = 0.05
DEFAULT_KNOBS: dict[str, Any] = {
    "latency": 0.0, "fail_submit": None, "fail_submit_times": None, "fail_task": None,
    "state_seconds": STATE_SECONDS,
}
PREDICTION_KEYS = {"id", "modelId", "modelName", "status", "outputs", "error", "createdAt", "completedAt"}



def _iso(value: str) -> datetime:
    assert value.endswith("Z") and len(value) == len("2025-01-15T12:00:00.000Z")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadingHTTPServer]:
    """The samples, plus an 11 MB "video" above VibeDream's 10 MB cap."""
    root = tmp_path_factory.mktemp("media")
    for name in ("character.png", "motion.mp4"):
        shutil.copy(SAMPLES / name, root / name)
    (root / "big.mp4").write_bytes(b"\0" * (11 * 1024 * 1024))
    srv = serve(partial(QuietFiles, directory=str(root)))
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(api_keys={"vibedream": KEY}).start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def _reset_knobs(sandbox: Sandbox) -> None:
    sandbox.configure("vibedream", **DEFAULT_KNOBS)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def url(sb: Sandbox, path: str) -> str:
    return sb.base_url("vibedream") + path


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def generate_body(media: ThreadingHTTPServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "image": loopback_url(media, "character.png"),
        "video": loopback_url(media, "motion.mp4"),
        "character_orientation": "image",
        "prompt": "A cheerful character dancing",
        "negative_prompt": "blurry, distorted, low quality",
        "keep_original_sound": True,
    }
    body.update(overrides)
    return body


def generate(client: httpx.Client, sb: Sandbox, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(url(sb, GENERATE), headers=auth(), json=body)
    assert r.status_code == 200, r.text
    return r.json()


def prediction(client: httpx.Client, sb: Sandbox, prediction_id: str) -> dict[str, Any]:
    r = client.get(url(sb, f"/api/v1/predictions/{prediction_id}"), headers=auth())
    assert r.status_code == 200, r.text
    return r.json()


def poll_final(client: httpx.Client, sb: Sandbox, prediction_id: str,
               seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        data = prediction(client, sb, prediction_id)
        if seen is not None:
            seen.append(data)
        return data if data["status"] in ("completed", "failed") else None

    return wait_until(check)


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers", [{}, auth("wrong-key"), {"Authorization": KEY}, {"Authorization": "Basic " + KEY}],
    ids=["missing", "wrong-key", "no-scheme", "basic"],
)
def test_unauthorized_requests_get_401(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, headers: dict[str, str]
) -> None:
    before = len(sandbox.tasks)
    r = client.post(url(sandbox, GENERATE), headers=headers, json=generate_body(media))
    assert r.status_code == 401 and isinstance(r.json()["error"], str)
    r = client.get(url(sandbox, f"/api/v1/predictions/{uuid.uuid4()}"), headers=headers)
    assert r.status_code == 401
    assert len(sandbox.tasks) == before


# --------------------------------------------------------------------------- generate


def test_generate_response_matches_the_page(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("vibedream", fail_task="skip render")
    payload = generate(client, sandbox, generate_body(media))
    assert set(payload) == {"id", "status", "statusUrl", "estimatedTime", "costCents", "createdAt"}
    uuid.UUID(payload["id"])
    assert payload["status"] == "processing"
    assert payload["statusUrl"] == url(sandbox, f"/api/v1/predictions/{payload['id']}")
    assert payload["estimatedTime"] == "60-180s" and payload["costCents"] == 37
    _iso(payload["createdAt"])
    # statusUrl is the polling endpoint itself
    r = client.get(payload["statusUrl"], headers=auth())
    assert r.status_code == 200 and r.json()["id"] == payload["id"]


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda b: b.pop("image"), "image"),
        (lambda b: b.pop("video"), "video"),
        (lambda b: b.update(image="data:image/png;base64,AAAA"), "image"),
        (lambda b: b.update(video=["http://x/v.mp4"]), "video"),
        (lambda b: b.update(character_orientation="sideways"), "character_orientation"),
        (lambda b: b.update(prompt=42), "prompt"),
        (lambda b: b.update(negative_prompt="x" * 2501), "negative_prompt"),
        (lambda b: b.update(keep_original_sound="yes"), "keep_original_sound"),
        (lambda b: b.update(image_url="http://x/i.png"), "image_url"),
    ],
    ids=["no-image", "no-video", "data-uri", "video-array", "bad-orientation", "prompt-not-str",
         "long-negative", "sound-not-bool", "unknown-field"],
)
def test_validation_errors_are_400(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer,
    mutate: Callable[[dict[str, Any]], Any], needle: str,
) -> None:
    body = generate_body(media)
    mutate(body)
    before = len(sandbox.tasks)
    r = client.post(url(sandbox, GENERATE), headers=auth(), json=body)
    assert r.status_code == 400
    assert set(r.json()) == {"error"} and needle in r.json()["error"]
    assert len(sandbox.tasks) == before


def test_malformed_requests(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    r = client.post(url(sandbox, GENERATE), headers={**auth(), "Content-Type": "application/json"},
                    content=b"{not json")
    assert r.status_code == 400
    r = client.post(url(sandbox, GENERATE), headers={**auth(), "Content-Type": "text/plain"}, content=b"{}")
    assert r.status_code == 400 and "Content-Type" in r.json()["error"]
    r = client.post(url(sandbox, "/api/v1/models/veo3.1-fast/generate"), headers=auth(),
                    json=generate_body(media))
    assert r.status_code == 404 and r.json()["error"] == "Model not found"


def test_optional_fields_default(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("vibedream", fail_task="skip render")
    body = {"image": loopback_url(media, "character.png"), "video": loopback_url(media, "motion.mp4")}
    job = sandbox.tasks[generate(client, sandbox, body)["id"]]
    # the schema marks character_orientation required but documents the default "image"
    assert job.request["character_orientation"] == "image" and job.request["keep_original_sound"] is True
    generate(client, sandbox, generate_body(media, prompt="y" * 2500, character_orientation="video"))


# --------------------------------------------------------------------------- fail_submit


@pytest.mark.parametrize("code,message", [
    (400, "Invalid request"), (401, "Invalid API key"), (402, "Insufficient credits"),
    (429, "Rate limit exceeded"), (500, "Internal server error"), (503, "Service unavailable"),
    (418, "Simulated error 418"),
])
def test_fail_submit(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, code: int, message: str
) -> None:
    sandbox.configure("vibedream", fail_submit=code)
    r = client.post(url(sandbox, GENERATE), headers=auth(), json=generate_body(media))
    assert r.status_code == code and r.json() == {"error": message}


def test_fail_submit_times_then_recovers(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer
) -> None:
    sandbox.configure("vibedream", fail_submit=429, fail_submit_times=1, fail_task="skip render")
    codes = [client.post(url(sandbox, GENERATE), headers=auth(), json=generate_body(media)).status_code
             for _ in range(2)]
    assert codes == [429, 200]
    assert sandbox.config("vibedream")["fail_submit"] is None


# --------------------------------------------------------------------------- predictions


def test_prediction_errors(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.get(url(sandbox, f"/api/v1/predictions/{uuid.uuid4()}"), headers=auth())
    assert r.status_code == 404 and r.json() == {"error": "Prediction not found"}
    r = client.post(url(sandbox, f"/api/v1/predictions/{uuid.uuid4()}"), headers=auth(), json={})
    assert r.status_code == 405
    assert client.get(url(sandbox, GENERATE), headers=auth()).status_code == 405
    assert client.get(url(sandbox, "/api/v1/nothing"), headers=auth()).status_code == 404


def test_success_lifecycle_and_playable_output(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, tmp_path: Path
) -> None:
    sandbox.configure("vibedream", state_seconds=0.1)
    prediction_id = generate(client, sandbox, generate_body(media))["id"]
    seen: list[dict[str, Any]] = []
    data = poll_final(client, sandbox, prediction_id, seen)
    states = [s["status"] for s in seen]
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == ["processing", "completed"]

    first = seen[0]
    assert set(first) == PREDICTION_KEYS
    assert first["outputs"] is None and first["error"] is None and first["completedAt"] is None

    assert set(data) == PREDICTION_KEYS
    assert (data["id"], data["modelId"], data["modelName"]) == (
        prediction_id, MODEL, "Kling 2.6 Pro Motion Control")
    assert data["error"] is None
    assert isinstance(data["outputs"], list) and len(data["outputs"]) == 1
    assert data["outputs"][0] == url(sandbox, f"/files/{prediction_id}.mp4")
    assert _iso(data["createdAt"]) <= _iso(data["completedAt"])
    assert "progress" not in data and "costCents" not in data

    r = httpx.get(data["outputs"][0], trust_env=False)  # a direct download link: no key
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    with av.open(str(out)) as c:
        assert c.streams.video and c.streams.audio
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (360, 640)  # never upscaled
        assert sum(1 for _ in c.decode(video=0)) > 0


# --------------------------------------------------------------------------- failures


def test_fail_task_knob(sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer) -> None:
    sandbox.configure("vibedream", fail_task="Your request was flagged by content moderation (simulated)")
    prediction_id = generate(client, sandbox, generate_body(media))["id"]
    data = poll_final(client, sandbox, prediction_id)
    assert data["status"] == "failed" and data["outputs"] is None
    assert data["error"] == "Your request was flagged by content moderation (simulated)"
    assert data["completedAt"] is not None


@pytest.mark.parametrize("field,path,needle", [
    ("video", "big.mp4", "10 MB"),
    ("video", "missing.mp4", "HTTP 404"),
    ("image", "motion.mp4", "image"),
])
def test_unusable_inputs_fail_the_prediction(
    sandbox: Sandbox, client: httpx.Client, media: ThreadingHTTPServer, field: str, path: str, needle: str
) -> None:
    body = generate_body(media, **{field: loopback_url(media, path)})
    prediction_id = generate(client, sandbox, body)["id"]
    data = poll_final(client, sandbox, prediction_id)
    assert data["status"] == "failed"
    assert data["error"].startswith(f"{field}:") and needle in data["error"]


def test_input_limits() -> None:
    from motionrelay_local.sandbox.render import ImageProbe, VideoProbe
    from motionrelay_local.sandbox.vibedream import check_inputs

    img = ImageProbe(480, 720, "png")
    check_inputs(img, VideoProbe(4.0, 360, 640, 25, True), "image")
    check_inputs(img, VideoProbe(25.0, 360, 640, 25, True), "video")
    for vid, orientation, needle in (
        (VideoProbe(12.0, 360, 640, 25, True), "image", "maximum is 10 s"),
        (VideoProbe(31.0, 360, 640, 25, True), "video", "maximum is 30 s"),
        (VideoProbe(2.0, 360, 640, 25, True), "video", "minimum is 3 s"),
        (VideoProbe(4.0, 240, 320, 25, True), "video", "300 px"),
    ):
        with pytest.raises(Exception, match=needle):
            check_inputs(img, vid, orientation)
    with pytest.raises(Exception, match="JPG/PNG"):
        check_inputs(ImageProbe(480, 720, "webp"), VideoProbe(4.0, 360, 640, 25, True), "image")
    with pytest.raises(Exception, match="aspect"):
        check_inputs(ImageProbe(300, 900, "png"), VideoProbe(4.0, 360, 640, 25, True), "image")


def test_registered_and_counted(sandbox: Sandbox, client: httpx.Client) -> None:
    assert "vibedream" in client.get(f"{sandbox.root_url}/_sandbox").json()["providers"]
    before = sandbox.requests[("vibedream", "prediction")]
    client.get(url(sandbox, "/api/v1/predictions/nope"), headers=auth())
    assert sandbox.requests[("vibedream", "prediction")] == before + 1
