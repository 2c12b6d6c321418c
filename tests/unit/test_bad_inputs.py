"""The bad-input corpus: every case goes through the real API handler (API Gateway v2 event,
moto, fake Kie) and must be refused with its status, stable code and field, with no provider
called, no job item written and no staged input left behind.

All cases share one moto account (module scope): a refused request writes nothing, so each
case also proves that no case before it left anything behind.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

import mediagen
from conftest import DEV_KEY, KIE_HMAC, KIE_KEY, SAMPLES
from mediagen import data_uri
from test_api import job_items, post_job, sample_request
from test_uploads import OTHER_KEY, new_upload, put, uploaded

KB, MB = 1024, 1024 * 1024
PNG = (SAMPLES / "character.png").read_bytes()
MP4 = (SAMPLES / "motion.mp4").read_bytes()
FILES = "https://files.example"


@pytest.fixture(scope="module")
def shared_aws():
    """conftest's `aws`, once per module (see the module docstring)."""
    from moto import mock_aws

    from motionrelay.apikeys import put_key
    from motionrelay.infra.aws import reset_clients
    from motionrelay.registry import reset_adapters
    from motionrelay.settings import reset_settings
    from motionrelay_local.bootstrap import create_all
    from motionrelay_local.moto_atomic import make_dynamodb_writes_atomic

    def reset():
        reset_settings()
        reset_clients()
        reset_adapters()

    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "MOTIONRELAY_TABLE": "jobs", "MOTIONRELAY_BUCKET": "media",
            "MOTIONRELAY_ROUTING": "kie", "MOTIONRELAY_KIE_API_KEY": KIE_KEY,
            "MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY": KIE_HMAC, "MOTIONRELAY_KIE_BASE_URL": "https://api.kie.example",
            "MOTIONRELAY_PUBLIC_URL": "https://api.motionrelay.example", "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "MotionRelay",
        }.items():
            mp.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "MOTIONRELAY_LOCAL", "AWS_PROFILE"):
            mp.delenv(name, raising=False)
        make_dynamodb_writes_atomic()
        with mock_aws():
            reset()
            create_all("jobs", "media", "transfer")
            put_key(DEV_KEY, tenant_id="tenant-a", name="test")
            put_key(OTHER_KEY, tenant_id="tenant-b", name="other")
            yield
        reset()


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Cases change routing and capabilities: the next one starts from the defaults."""
    yield
    from motionrelay.registry import reset_adapters
    from motionrelay.settings import reset_settings

    reset_settings()
    reset_adapters()


class Ctx:
    """What a case may set up: routing, fake capabilities, a URL server, uploads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mp = monkeypatch

    def routing(self, value: str) -> Ctx:
        from motionrelay.settings import reset_settings

        self.mp.setenv("MOTIONRELAY_ROUTING", value)
        reset_settings()
        return self

    def caps(self, **per_provider: dict) -> Ctx:
        """Providers' capabilities: Kie's, changed by the given fields (no HTTP is reached)."""
        from motionrelay import registry as providers
        from motionrelay.providers.kie import CAPABILITIES

        real = providers.get_adapter
        fakes = {name: dataclasses.replace(CAPABILITIES, **fields) for name, fields in per_provider.items()}

        def get_adapter(name: str):
            if name in fakes:
                return types.SimpleNamespace(name=name, capabilities=fakes[name])
            return real(name)

        self.mp.setattr(providers, "get_adapter", get_adapter)
        return self

    def request(self, **overrides) -> dict:
        return sample_request(**overrides)

    def urls(self) -> str:
        """https://files.example served by a MockTransport instead of the network."""
        def handler(request: httpx.Request) -> httpx.Response:
            path = request.url.path
            if path == "/timeout":
                raise httpx.ReadTimeout("no answer", request=request)
            if path == "/refused":
                raise httpx.ConnectError("connection refused", request=request)
            if path == "/loop":
                return httpx.Response(302, headers={"location": "/loop"})
            if path == "/error":
                return httpx.Response(500, text="internal error")
            files = {"/character.png": PNG, "/notes.png": mediagen.TEXT, "/short.mp4": mediagen.video(2)}
            body = files.get(path)
            if body is None:
                return httpx.Response(404, text="not found")
            return httpx.Response(200, content=body)

        self.mp.setattr("motionrelay.infra.netguard.guarded_client",
                        lambda **kw: httpx.Client(transport=httpx.MockTransport(handler)))
        return FILES


@dataclass(frozen=True)
class Case:
    id: str
    body: Callable[[Ctx], dict | str]
    expect: str  # "<status> <code> [<field>]"

    @property
    def expected(self) -> tuple[int, str, str | None]:
        status, code, *field = self.expect.split()
        return int(status), code, field[0] if field else None


def req(**overrides) -> Callable[[Ctx], dict]:
    """A sample request with `overrides`; callable values are made only when the case runs."""
    return lambda ctx: sample_request(**{k: v() if callable(v) else v for k, v in overrides.items()})


def media(field: str, data: Callable[[], bytes], mime: str, **overrides) -> Callable[[Ctx], dict]:
    """A request whose `field` is a data: URI of lazily made media."""
    return lambda ctx: sample_request(**{field: data_uri(data(), mime)}, **overrides)


def url(field: str, path: str) -> Callable[[Ctx], dict]:
    return lambda ctx: sample_request(**{field: f"{ctx.urls()}{path}"})


def raw(body: str) -> Callable[[Ctx], str]:
    return lambda ctx: body


def without(name: str) -> Callable[[Ctx], dict]:
    def make(ctx: Ctx) -> dict:
        body = sample_request()
        del body[name]
        return body
    return make


def _b64(data: bytes) -> str:
    return data_uri(data, "x/x").split(",", 1)[1]


def _video(seconds: float, **kwargs) -> Callable[[], str]:
    mime = "video/quicktime" if "container" in kwargs else "video/mp4"
    return lambda: data_uri(mediagen.video(seconds, **kwargs), mime)


def _gif() -> bytes:
    return mediagen.image(fmt="GIF")


CASES = [
    # ------------------------------------------------------------------ the request itself
    Case("malformed-json", raw("{not json"), "400 invalid_request"),
    Case("json-array", raw("[]"), "400 invalid_request"),
    Case("json-string", raw('"make me a video"'), "400 invalid_request"),
    Case("json-null", raw("null"), "400 invalid_request"),
    Case("empty-body", raw(""), "400 invalid_request"),
    Case("json-nested-100k-arrays", raw("[" * 100_000), "400 invalid_request"),  # RecursionError
    Case("json-nested-100k-objects", raw('{"metadata":' * 100_000), "400 invalid_request"),
    Case("missing-image", without("image"), "400 invalid_request image"),
    Case("missing-video", without("video"), "400 invalid_request video"),
    Case("image-number", req(image=5), "400 invalid_request image"),
    Case("video-object", req(video={"url": "https://x.example/v.mp4"}), "400 invalid_request video"),
    Case("image-empty", req(image=""), "400 invalid_request image"),
    Case("image-bare-filename", req(image="character.png"), "400 invalid_request image"),
    Case("image-ftp", req(image="ftp://example.com/a.png"), "400 invalid_request image"),
    Case("unknown-field", req(colour="red"), "400 invalid_request colour"),
    Case("unknown-field-model", req(model="kling-2.6/motion-control"), "400 invalid_request model"),
    Case("quality-unknown", req(quality="ultra"), "400 invalid_request quality"),
    Case("quality-number", req(quality=1080), "400 invalid_request quality"),
    Case("orientation-unknown", req(character_orientation="left"),
         "400 invalid_request character_orientation"),
    Case("orientation-bool", req(character_orientation=True), "400 invalid_request character_orientation"),
    Case("provider-unknown", req(provider="openai"), "400 invalid_request provider"),
    Case("keep-sound-string", req(keep_original_sound="yes"), "400 invalid_request keep_original_sound"),
    Case("keep-sound-number", req(keep_original_sound=0), "400 invalid_request keep_original_sound"),
    Case("prompt-too-long", req(prompt="x" * 2501), "400 invalid_request prompt"),
    Case("prompt-list", req(prompt=["a", "dancer"]), "400 invalid_request prompt"),
    Case("negative-prompt-too-long", req(negative_prompt="x" * 2501), "400 invalid_request negative_prompt"),
    Case("metadata-too-large", req(metadata={"x": "y" * 5000}), "400 invalid_request metadata"),
    Case("metadata-list", req(metadata=["a"]), "400 invalid_request metadata"),
    Case("metadata-string", req(metadata="order=42"), "400 invalid_request metadata"),
    Case("webhook-http", req(webhook_url="http://example.com/hook"), "400 invalid_request webhook_url"),
    Case("webhook-number", req(webhook_url=42), "400 invalid_request webhook_url"),
    # A webhook_url whose host is a literal non-public address, in any spelling getaddrinfo reads:
    # never deliverable, so refused now instead of a 202 and a notification that never comes.
    Case("webhook-loopback", req(webhook_url="https://127.0.0.1/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-decimal-loopback", req(webhook_url="https://2130706433/hook"),
         "422 forbidden_url webhook_url"),
    Case("webhook-hex-loopback", req(webhook_url="https://0x7f000001/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-octal-loopback", req(webhook_url="https://0177.0.0.1/hook"),
         "422 forbidden_url webhook_url"),
    Case("webhook-short-loopback", req(webhook_url="https://127.1:8443/hook"),
         "422 forbidden_url webhook_url"),
    Case("webhook-octal-metadata-ip", req(webhook_url="https://0251.0376.0251.0376/latest/meta-data/"),
         "422 forbidden_url webhook_url"),
    Case("webhook-metadata-ip", req(webhook_url="https://169.254.169.254/"), "422 forbidden_url webhook_url"),
    Case("webhook-private", req(webhook_url="https://10.0.0.5/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-cgnat", req(webhook_url="https://100.64.1.1/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-ipv6-loopback", req(webhook_url="https://[::1]/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-ipv4-mapped", req(webhook_url="https://[::ffff:127.0.0.1]/hook"),
         "422 forbidden_url webhook_url"),
    Case("webhook-ipv4-compatible", req(webhook_url="https://[::169.254.169.254]/hook"),
         "422 forbidden_url webhook_url"),
    Case("webhook-nat64", req(webhook_url="https://[64:ff9b::7f00:1]/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-6to4", req(webhook_url="https://[2002:7f00:1::]/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-link-local-v6", req(webhook_url="https://[fe80::1]/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-ula", req(webhook_url="https://[fd00::1]/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-localhost", req(webhook_url="https://localhost/hook"), "422 forbidden_url webhook_url"),
    Case("webhook-credentials", req(webhook_url="https://user:pw@hooks.example.com/"),
         "422 forbidden_url webhook_url"),
    # ------------------------------------------------------------------ data: URIs
    Case("base64-truncated", req(image="data:image/png;base64," + _b64(PNG)[:-3]),
         "400 invalid_request image"),
    Case("base64-garbage", req(image="data:image/png;base64,iVBORw0KGgo!!!"), "400 invalid_request image"),
    Case("data-uri-not-base64", req(image="data:image/png,rawpixels"), "400 invalid_request image"),
    Case("video-base64-truncated", req(video="data:video/mp4;base64," + _b64(MP4)[:-1]),
         "400 invalid_request video"),
    Case("image-declared-video", media("image", lambda: PNG, "video/mp4"), "415 unsupported_media image"),
    Case("video-declared-image", media("video", lambda: MP4, "image/png"), "415 unsupported_media video"),
    Case("gif-declared-gif", media("image", _gif, "image/gif"), "415 unsupported_media image"),
    Case("gif-called-png", media("image", _gif, "image/png"), "415 unsupported_media image"),
    Case("webp-declared-webp", media("image", lambda: mediagen.image(fmt="WEBP"), "image/webp"),
         "415 unsupported_media image"),
    Case("bmp-called-png", media("image", lambda: mediagen.image(fmt="BMP"), "image/png"),
         "415 unsupported_media image"),
    Case("text-called-png", media("image", lambda: mediagen.TEXT, "image/png"),
         "415 unsupported_media image"),
    Case("mp3-called-video", media("video", lambda: mediagen.MP3, "video/mp4"),
         "415 unsupported_media video"),
    Case("mp3-declared-audio", media("video", lambda: mediagen.MP3, "audio/mpeg"),
         "415 unsupported_media video"),
    Case("png-called-video", media("video", lambda: PNG, "video/mp4"), "415 unsupported_media video"),
    Case("mp4-audio-only", media("video", mediagen.audio_only_mp4, "video/mp4"),
         "415 unsupported_media video"),
    Case("png-truncated", media("image", lambda: PNG[: len(PNG) // 2], "image/png"),
         "415 unsupported_media image"),
    Case("jpeg-truncated", media("image", lambda: mediagen.image(fmt="JPEG")[:3000], "image/jpeg"),
         "415 unsupported_media image"),
    Case("mp4-truncated", media("video", lambda: MP4[: len(MP4) // 2], "video/mp4"),
         "415 unsupported_media video"),
    Case("mp4-header-then-garbage", media("video", lambda: MP4[:32] + bytes(4000), "video/mp4"),
         "415 unsupported_media video"),
    # ------------------------------------------------------------------ what the probe measures
    Case("image-200x200", media("image", lambda: mediagen.image(200, 200), "image/png"),
         "422 input_too_small image"),
    Case("image-299-wide", media("image", lambda: mediagen.image(299, 600), "image/png"),
         "422 input_too_small image"),
    Case("image-1x4", media("image", lambda: mediagen.image(300, 1200), "image/png"),
         "422 bad_aspect_ratio image"),
    Case("image-4x1-jpeg", media("image", lambda: mediagen.image(1200, 300, "JPEG"), "image/jpeg"),
         "422 bad_aspect_ratio image"),
    Case("video-4x1", req(video=_video(4, width=1200, height=300)), "422 bad_aspect_ratio video"),
    Case("video-256x256", req(video=_video(4, width=256, height=256)), "422 input_too_small video"),
    Case("video-2s", req(video=_video(2)), "422 input_too_short video"),
    Case("video-31s-orientation-video", req(video=_video(31), character_orientation="video"),
         "422 input_too_long video"),
    Case("video-12s-orientation-image", req(video=_video(12), character_orientation="image"),
         "422 input_too_long video"),
    Case("mov-12s-orientation-image", req(video=_video(12, container="mov")), "422 input_too_long video"),
    Case("image-over-10mb", req(image=lambda: "data:image/png;base64," + "A" * (14 * MB)),
         "413 input_too_large image"),
    Case("video-over-every-cap", lambda ctx: ctx.caps(kie={"max_video_bytes": 50 * KB}).request(),
         "413 input_too_large video"),
    # ------------------------------------------------------------------ https:// URLs
    Case("url-404", url("image", "/missing.png"), "422 input_unreachable image"),
    Case("url-500", url("video", "/error"), "422 input_unreachable video"),
    Case("url-never-answers", url("image", "/timeout"), "422 input_unreachable image"),
    Case("url-connection-refused", url("video", "/refused"), "422 input_unreachable video"),
    Case("url-redirect-loop", url("image", "/loop"), "422 input_unreachable image"),
    Case("url-text-called-png", url("image", "/notes.png"), "415 unsupported_media image"),
    Case("url-2s-video", url("video", "/short.mp4"), "422 input_too_short video"),
    Case("url-http", req(image="http://example.com/a.png"), "422 forbidden_url image"),
    Case("url-loopback", req(image="https://127.0.0.1/a.png"), "422 forbidden_url image"),
    Case("url-localhost", req(image="https://localhost/a.png"), "422 forbidden_url image"),
    Case("url-metadata-ip", req(video="https://169.254.169.254/latest/meta-data/"),
         "422 forbidden_url video"),
    Case("url-private", req(image="https://10.1.2.3/a.png"), "422 forbidden_url image"),
    Case("url-credentials", req(image="https://user:pw@example.com/a.png"), "422 forbidden_url image"),
    Case("url-ipv4-mapped-ipv6", req(image="https://[::ffff:127.0.0.1]/a.png"), "422 forbidden_url image"),
    Case("url-decimal-loopback", req(image="https://2130706433/a.png"), "422 forbidden_url image"),
    # ------------------------------------------------------------------ upload:<id>
    Case("upload-unknown", req(image="upload:" + "0" * 32), "422 input_unreachable image"),
    Case("upload-malformed-id", req(image="upload:../../etc/passwd"), "422 input_unreachable image"),
    Case("upload-other-tenant", lambda ctx: ctx.request(image=uploaded(PNG, "image/png", key=OTHER_KEY)),
         "422 input_unreachable image"),
    Case("upload-not-completed", lambda ctx: ctx.request(video=new_upload("video/mp4", len(MP4))["id"]),
         "422 input_unreachable video"),
    Case("upload-larger-than-declared", lambda ctx: ctx.request(image=_overfull_upload()),
         "413 input_too_large image"),
    Case("upload-image-as-video", lambda ctx: ctx.request(video=uploaded(PNG, "image/png")),
         "415 unsupported_media video"),
    # ------------------------------------------------------------------ what providers can serve
    Case("kie-negative-prompt", req(provider="kie", negative_prompt="blurry"),
         "422 provider_cannot_serve negative_prompt"),
    Case("kie-drop-sound", req(provider="kie", keep_original_sound=False),
         "422 provider_cannot_serve keep_original_sound"),
    Case("provider-not-enabled", req(provider="novita"), "422 provider_cannot_serve provider"),
    Case("no-routed-provider-takes-negative-prompt", req(negative_prompt="blurry"),
         "422 provider_cannot_serve negative_prompt"),
    Case("named-provider-quality",
         lambda ctx: ctx.caps(kie={"qualities": frozenset({"pro"})}).request(provider="kie", quality="std"),
         "422 provider_cannot_serve quality"),
    Case("named-provider-prompt-length",
         lambda ctx: ctx.caps(kie={"max_prompt_chars": 10}).request(provider="kie"),
         "422 provider_cannot_serve prompt"),
    Case("named-provider-video-bytes",
         lambda ctx: ctx.routing("kie,novita").caps(novita={"max_video_bytes": 10 * KB})
         .request(provider="novita"),
         "422 provider_cannot_serve video"),
    Case("named-provider-video-seconds",
         lambda ctx: ctx.routing("kie,pixazo").caps(pixazo={"max_video_seconds_video_orientation": 10})
         .request(provider="pixazo", character_orientation="video", video=_video(12)()),
         "422 provider_cannot_serve video"),
    Case("named-provider-container",
         lambda ctx: ctx.routing("kie,pixazo").caps(pixazo={"video_containers": frozenset({"mp4"})})
         .request(provider="pixazo", video=_video(4, container="mov")()),
         "422 provider_cannot_serve video"),
    Case("named-provider-no-prompt",
         lambda ctx: ctx.routing("kie,pixazo").caps(pixazo={"prompt": False}).request(provider="pixazo"),
         "422 provider_cannot_serve prompt"),
    Case("no-routed-provider-serves-it",
         lambda ctx: ctx.routing("novita,pixazo")
         .caps(novita={"qualities": frozenset({"pro"})}, pixazo={"prompt": False}).request(quality="std"),
         "422 provider_cannot_serve quality"),
]


def _overfull_upload() -> str:
    # S3 refuses such a PUT (Content-Length is signed); moto does not, so the re-check shows.
    upload = new_upload("image/png", 1000)
    put(upload, PNG, "image/png")
    return upload["id"]


def staged_inputs() -> list[str]:
    """Objects under inputs/ other than clients' uploads: what the API staged itself."""
    from motionrelay.infra.aws import client

    listing = client("s3").list_objects_v2(Bucket="media", Prefix="inputs/")
    return [o["Key"] for o in listing.get("Contents", []) if not o["Key"].startswith("inputs/uploads/")]


def test_the_corpus_is_big_and_distinct():
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_before_any_provider_is_paid(shared_aws, kie, monkeypatch, case):
    body = case.body(Ctx(monkeypatch))

    status, response = post_job(body)

    error = response.get("error", {})
    assert (status, error.get("code"), error.get("field")) == case.expected, error
    assert error["message"] and len(error["message"]) < 600
    assert kie.calls == []
    assert job_items() == []
    assert staged_inputs() == []  # staged for a refused request -> deleted at once


def test_a_refused_request_is_refused_before_any_input_is_fetched(shared_aws, kie, monkeypatch):
    """Request-level limits come first: no staging, no probing, no provider."""
    def forbidden(*args, **kwargs):
        raise AssertionError("an input was staged for a request that was going to be refused")

    monkeypatch.setattr("motionrelay.inputs.stage_input", forbidden)
    status, response = post_job(sample_request(provider="kie", negative_prompt="blurry",
                                               image=f"{FILES}/character.png"))
    assert (status, response["error"]["code"]) == (422, "provider_cannot_serve")
    assert kie.calls == [] and job_items() == []


def test_messages_say_what_to_change(shared_aws, kie):
    _, too_long = post_job(sample_request(video=data_uri(mediagen.video(12), "video/mp4")))
    assert "10 s" in too_long["error"]["message"] and "character_orientation" in too_long["error"]["message"]
    _, cannot = post_job(sample_request(provider="kie", negative_prompt="blurry"))
    assert "negative_prompt" in cannot["error"]["message"] and "provider" in cannot["error"]["message"]
    assert json.dumps(cannot).count("base64") == 0
