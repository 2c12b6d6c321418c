"""AI/ML API simulator for Kling 2.6 Motion Control (docs/providers.md section 2; seeds/001).

Written from AI/ML API's documentation only (the model page, its OpenAPI schema, the generic
video fetch schema and the errors-and-messages pages). Mounted at `{root}/aimlapi`, so
`base_url("aimlapi")` plays the role of `https://api.aimlapi.com`:

- `POST /v2/video/generations` -> `{"id": ..., "status": "queued"}`
- `GET  /v2/video/generations?generation_id=...` -> `{id, status, video, error, meta}`
- `GET  /files/<id>.mp4` -> the rendered video (no auth, like the cdn.aimlapi.com link)

Choices where the docs are silent or ambiguous (keep in sync with the sandbox report):

- Auth: both endpoints need `Authorization: Bearer <key>`; otherwise HTTP 401 with the
  documented message. Every error is an HTTP status plus the documented body
  `{message, path, requestId, statusCode, timestamp}`; `statusCode` is sent as an integer
  (the docs' example shows the string "429" in a block that is not valid JSON anyway),
  `requestId` a UUID, `timestamp` ISO 8601 with milliseconds and `Z`.
- Both model ids are accepted (which one the live API takes is an open question):
  `klingai/video-v2-6-motion-control` (Jun 2026 schema: `mode` std|pro, default std,
  `character_orientation` default video) and `klingai/video-v2-6-pro-motion-control`
  (Jan 2026 schema: no `mode`, always Pro/1080p, `character_orientation` default image).
- The body schema is strict: unknown keys answer 400 (zod's "Unrecognized key(s) in object"),
  which includes `mode` with the older id, whose schema has none - a client mixing the two
  schemas is told so rather than silently rendered at another tier. So is a webhook/callback
  field: AI/ML API documents no callbacks for video models and the simulator sends none.
- Validation errors are HTTP 400 with message `Body validation error!` followed by a line
  naming the field in zod's words (`Required`, `Invalid enum value. Expected ..., received
  ...`, `Expected string, received number`). A POST whose Content-Type is not JSON has no
  parsed body and gets the same 400 (field `model` Required). A missing `generation_id` is
  a 400 `Query validation error!`; an unknown one is a 404 `Generation not found`.
- `image_url`: an http(s) URL, a data URI or bare Base64 ("a Base64-encoded local image");
  `video_url`: an http(s) URL or a data URI (the docs say "HTTPS URL"; plain http is
  accepted because local-stack inputs are served over loopback http). Inline inputs are
  decoded at submit (invalid Base64 is a 400), written to the provider's files dir as
  `<id>.input-image.mp4` / `<id>.input-video.mp4` (the shared JobRunner only downloads
  over HTTP, and /files/ is the one route that serves files) and deleted when the task
  ends. The sandbox server caps request bodies at 10 MB, so larger inline inputs are
  refused by the server itself (plain `{"error": ...}` 400), not by this schema.
- `prompt`: a string; the schema states no length, so none is enforced. `keep_audio`: a
  boolean, default true (false renders without the audio track).
- Input limits (page guidelines) are checked while `generating` and fail the task: image
  png/jpeg, short edge >= 300 px; video 3..30 s, <= 10 s when `character_orientation` is
  `image`; 10 MB image / 100 MB video (AI/ML API states no byte cap; these are the
  upstream Kling limits).
- Statuses: `queued` (while the job is pending and queued) -> `generating` -> `completed` |
  `error`. The `waiting` knob (default off) reports the first phase as `waiting`, the
  status the docs' sample client also checks for. No progress or ETA (none documented).
- The fetch answer always carries every documented key: `video` and `error` are null until
  they apply, `meta` is null until completion. On `completed`: `video.url` =
  `{base}/files/<id>.mp4` and `meta.usage{credits_used, usd_spent}`; the docs give no price,
  so the figures are illustrative: $0.07 (std) / $0.112 (pro) per started output second,
  2,100,000 credits per USD. Failed generations are not charged (`meta` stays null).
- `error.name`: `GenerationError` for the `fail_task` knob, `InvalidInputError` for unusable
  inputs, `InternalServerError` for internal failures; `error.message` the reason.
- Ids are 21 alphanumeric characters, like the docs' example `NVOeetazzu2Xlca6ghTMx`.
- `fail_submit` knob: 400/401/403/404/429/500/502/503/504 answer that HTTP status with the
  documented message for it (429 adds `Retry-After: 1`, not documented but what rate
  limiters send); any other 4xx/5xx code answers that status with "Simulated error".
- Output: the motion video's length and frame rate, audio per `keep_audio`, scaled down to
  720 px (std) or 1080 px (pro, and the older Pro-only id) height, never up.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import string
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .jobs import InputError, InputSpec, JobSpec, SimJob
from .provider import Provider, SandboxContext
from .render import ImageProbe, VideoProbe
from .wire import Request, Response

MODEL = "klingai/video-v2-6-motion-control"  # newer schema, takes `mode`
MODEL_PRO_ONLY = "klingai/video-v2-6-pro-motion-control"  # older schema, no `mode`
MODELS = (MODEL, MODEL_PRO_ONLY)
GENERATIONS = "/v2/video/generations"
ORIENTATIONS = ("image", "video")
MODES = {"std": 720, "pro": 1080}
FIELDS = {
    MODEL: {"model", "prompt", "image_url", "video_url", "character_orientation", "keep_audio", "mode"},
    MODEL_PRO_ONLY: {"model", "prompt", "image_url", "video_url", "character_orientation", "keep_audio"},
}
DEFAULT_ORIENTATION = {MODEL: "video", MODEL_PRO_ONLY: "image"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 100 * 1024 * 1024
USD_PER_SECOND = {"std": 0.07, "pro": 0.112}
CREDITS_PER_USD = 2_100_000
ID_ALPHABET = string.ascii_letters + string.digits

STATES = {"pending": "queued", "queued": "queued", "running": "generating",
          "succeeded": "completed", "failed": "error"}
ERROR_NAMES = {"task": "GenerationError", "input": "InvalidInputError", "internal": "InternalServerError"}

UNAUTHORIZED = ("This request requires a valid API key. You can create a new API key on the Billing page: "
                "https://aimlapi.com/app/keys")
NO_CREDITS = ("You've run out of credits. Please top up your balance or update your payment method to "
              "continue: https://aimlapi.com/app/billing/")
# message for each simulated submit failure (fail_submit knob); the HTTP status is the code
SUBMIT_FAILURES: dict[int, str] = {
    400: "Body validation error!",
    401: UNAUTHORIZED,
    403: NO_CREDITS,
    404: "Not Found",
    429: "Too Many Requests",
    500: "Something wrong with the server. Please, try again later.",
    502: "Bad Gateway",
    503: "Service unavailable",
    504: "Generation timeout",
}


class ValidationError(Exception):
    pass


def _bool_knob(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def error_body(status: int, message: str, path: str = GENERATIONS) -> Response:
    """The documented error body, with `statusCode` mirroring the HTTP status."""
    return Response.json({
        "message": message,
        "path": path,
        "requestId": str(uuid.uuid4()),
        "statusCode": status,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }, status=status)


class AimlapiProvider(Provider):
    name = "aimlapi"
    default_api_key = "sandbox-aimlapi-key"
    extra_knobs: ClassVar[dict[str, tuple[Any, Any]]] = {
        "waiting": (False, _bool_knob),  # report the first phase as `waiting` instead of `queued`
    }
    knob_defaults: ClassVar[dict[str, Any]] = {"callbacks": False}  # none documented

    def __init__(self, ctx: SandboxContext, api_key: str | None = None) -> None:
        super().__init__(ctx, api_key)
        self._routes = {("POST", GENERATIONS): "create", ("GET", GENERATIONS): "fetch"}

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        return self._routes.get((req.method, req.path))

    def dispatch(self, endpoint: str, req: Request) -> Response:
        if not self._authorized(req):
            return error_body(401, UNAUTHORIZED, req.path)
        if endpoint == "create":
            return self.create(req)
        return self.fetch(req)

    def not_found(self, req: Request) -> Response:
        return error_body(404, f"Cannot {req.method} {req.path}", req.path)

    def _authorized(self, req: Request) -> bool:
        scheme, _, token = (req.header("Authorization") or "").strip().partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip(), self.api_key)

    # --------------------------------------------------------------- create

    def create(self, req: Request) -> Response:
        code = self.take_submit_failure()
        if code is not None:
            return self._simulated_failure(code)
        try:
            body = req.json() if req.media_type() == "application/json" else {}
        except (ValueError, UnicodeDecodeError):
            return error_body(400, "Body validation error!\nInvalid JSON")
        try:
            params = validate_create(body)
        except ValidationError as exc:
            return error_body(400, f"Body validation error!\n{exc}")

        task_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(21))
        try:
            image_url = self._stage_inline(task_id, "image", params["image_url"])
            video_url = self._stage_inline(task_id, "video", params["video_url"])
        except ValidationError as exc:
            self._drop_inline(task_id)
            return error_body(400, f"Body validation error!\n{exc}")

        config = self.config()
        states = {**STATES, "pending": "waiting"} if config["waiting"] else STATES
        job = SimJob(task_id=task_id, provider=self.name, request=body, state_names=states, config=config,
                     extra={"mode": params["mode"]})
        spec = JobSpec(
            image=InputSpec("image_url", image_url, MAX_IMAGE_BYTES),
            video=InputSpec("video_url", video_url, MAX_VIDEO_BYTES),
            output_name=f"{task_id}.mp4",
            keep_sound=params["keep_audio"],
            max_height=MODES[params["mode"]],
            state_seconds=config["state_seconds"],
            fail_message=config["fail_task"],
            check_inputs=lambda img, vid: check_inputs(img, vid, params["character_orientation"]),
            on_finish=lambda finished: self._drop_inline(finished.task_id),
        )
        self.ctx.tasks[task_id] = job
        self.ctx.jobs.run(
            job, spec, self.ctx.files_dir(self.name), f"{self.ctx.base_url(self.name)}/files/{task_id}.mp4"
        )
        return Response.json({"id": task_id, "status": job.state})

    def _simulated_failure(self, code: int) -> Response:
        status = code if 400 <= code <= 599 else 500
        resp = error_body(status, SUBMIT_FAILURES.get(code, "Simulated error"))
        if status == 429:
            resp.headers["Retry-After"] = "1"
        return resp

    def _inline_path(self, task_id: str, kind: str) -> Path:
        return self.ctx.files_dir(self.name) / f"{task_id}.input-{kind}.mp4"

    def _stage_inline(self, task_id: str, kind: str, value: str) -> str:
        """A URL the job can download: http(s) as is, inline data written under /files/."""
        if _is_http_url(value):
            return value
        data = decode_inline(value, f"{kind}_url", allow_bare=kind == "image")
        path = self._inline_path(task_id, kind)
        path.write_bytes(data)
        return f"{self.ctx.base_url(self.name)}/files/{path.name}"

    def _drop_inline(self, task_id: str) -> None:
        for kind in ("image", "video"):
            self._inline_path(task_id, kind).unlink(missing_ok=True)

    # --------------------------------------------------------------- fetch

    def fetch(self, req: Request) -> Response:
        task_id = (req.query_one("generation_id") or "").strip()
        if not task_id:
            return error_body(400, "Query validation error!\ngeneration_id: Required", req.path)
        job = self.ctx.tasks.get(task_id)
        if job is None or job.provider != self.name:
            return error_body(404, "Generation not found", req.path)
        return Response.json(snapshot(job))


# ------------------------------------------------------------------- pure helpers


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _enum_error(name: str, allowed: tuple[str, ...], got: Any) -> ValidationError:
    expected = " | ".join(f"'{a}'" for a in allowed)
    return ValidationError(f"{name}: Invalid enum value. Expected {expected}, received '{got}'")


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), "null")


def _check_type(body: dict[str, Any], name: str, kind: type) -> None:
    if name in body and not isinstance(body[name], kind):
        expected = {str: "string", bool: "boolean"}[kind]
        raise ValidationError(f"{name}: Expected {expected}, received {_type_name(body[name])}")


def validate_create(body: Any) -> dict[str, Any]:
    """Check a create body against the documented schema; returns the parameters with defaults."""
    if not isinstance(body, dict):
        raise ValidationError("Expected object, received " + _type_name(body))
    model = body.get("model")
    if model is None:
        raise ValidationError("model: Required")
    if model not in MODELS:
        raise _enum_error("model", MODELS, model)
    unknown = sorted(set(body) - FIELDS[model])
    if unknown:
        raise ValidationError("Unrecognized key(s) in object: " + ", ".join(f"'{k}'" for k in unknown))
    for name in ("image_url", "video_url"):
        if body.get(name) is None:
            raise ValidationError(f"{name}: Required")
    for name in ("image_url", "video_url", "prompt", "character_orientation", "mode"):
        _check_type(body, name, str)
    _check_type(body, "keep_audio", bool)
    if not _is_http_url(body["image_url"]) and not body["image_url"].strip():
        raise ValidationError("image_url: Invalid url")
    if not _is_http_url(body["video_url"]) and not body["video_url"].startswith("data:"):
        raise ValidationError("video_url: Invalid url (an HTTPS URL or a data URI)")
    orientation = body.get("character_orientation", DEFAULT_ORIENTATION[model])
    if orientation not in ORIENTATIONS:
        raise _enum_error("character_orientation", ORIENTATIONS, orientation)
    mode = body.get("mode", "std") if model == MODEL else "pro"
    if mode not in MODES:
        raise _enum_error("mode", tuple(MODES), mode)
    return {**body, "character_orientation": orientation, "mode": mode,
            "keep_audio": body.get("keep_audio", True)}


def decode_inline(value: str, name: str, allow_bare: bool) -> bytes:
    """Bytes of a `data:<mime>;base64,<data>` URI (or bare Base64 when `allow_bare`)."""
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise ValidationError(f"{name}: data URI must be base64-encoded (data:<mime>;base64,...)")
    elif allow_bare:
        payload = value
    else:
        raise ValidationError(f"{name}: Invalid url")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{name}: invalid Base64 data") from None
    if not data:
        raise ValidationError(f"{name}: empty inline data")
    return data


def check_inputs(img: ImageProbe, vid: VideoProbe, orientation: str) -> None:
    """The model page's input guidelines, applied once the files are fetched."""
    if img.format not in ("png", "jpeg"):
        raise InputError(f"image_url: unsupported image format {img.format or 'unknown'} (jpeg/png)")
    if min(img.width, img.height) < 300:
        raise InputError(f"image_url: image is {img.width}x{img.height}, the short edge must be >= 300 px")
    max_s = 10.0 if orientation == "image" else 30.0
    if vid.duration < 3.0 - 0.05:
        raise InputError(f"video_url: video is {vid.duration:.1f} s, minimum is 3 s")
    if vid.duration > max_s + 0.05:
        raise InputError(
            f"video_url: video is {vid.duration:.1f} s, maximum is {max_s:.0f} s "
            f"for character_orientation={orientation}"
        )


def snapshot(job: SimJob) -> dict[str, Any]:
    """The fetch answer for a job (a consistent snapshot)."""
    with job.lock:
        status = job.state
        video = error = meta = None
        if status == "completed":
            video = {"url": job.output_url}
            seconds = math.ceil((job.media or {}).get("duration", 0) - 1e-6)
            usd = round(seconds * USD_PER_SECOND[job.extra["mode"]], 4)
            meta = {"usage": {"credits_used": round(usd * CREDITS_PER_USD), "usd_spent": usd}}
        elif status == "error":
            error = {"name": ERROR_NAMES.get(job.fail_kind, "InternalServerError"),
                     "message": job.fail_message or "internal error"}
        return {"id": job.task_id, "status": status, "video": video, "error": error, "meta": meta}
