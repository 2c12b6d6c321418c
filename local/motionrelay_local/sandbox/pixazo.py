"""Pixazo simulator for Kling Video v2.6 Standard Motion Control (docs/providers.md section 5).

Written from Pixazo's model page only. Mounted at `{root}/pixazo`, so `base_url("pixazo")`
plays the role of `https://gateway.pixazo.ai`:

- `POST /kling-video-v2-6-standard-motion-control/v1/kling-video-v2-6-standard-motion-control-request`
  `{image_url, video_url, character_orientation?, keep_original_sound?}`
  -> `{"status":"IN_QUEUE","request_id":...,"message":"Motion transfer job queued successfully"}`
- `POST .../kling-video-v2-6-standard-motion-control-request-result` `{"request_id": ...}`
  -> `{"status": IN_QUEUE|IN_PROGRESS|COMPLETED|FAILED, "request_id": ..., ...}`
- `GET  /files/<request_id>.mp4` -> the rendered video (no auth, like a public CDN link)

Choices where the docs are silent or ambiguous (keep in sync with the sandbox report):

- Auth: a missing or wrong `Ocp-Apim-Subscription-Key` answers HTTP 401
  `{"error":"Invalid or missing authentication"}` (the documented body), before anything else.
- The page says `Content-Type` "must be set to application/json" and `Cache-Control` "must be
  set to no-cache": a request without either answers HTTP 400 `{"error": "Invalid request
  parameters: ..."}` naming the header (checked after auth, on both endpoints).
- Errors are always `{"error": <str>}` with the documented HTTP status; validation errors
  start with the documented "Invalid request parameters" and then say what is wrong.
- `fail_submit` knob: 400/401/403/404/429/500 answer that HTTP status with the page's
  documented body; any other code answers that HTTP status (500 when it is not one) with
  `{"error": "Simulated error <code>"}`. No `Retry-After` (not documented).
- Validation follows the parameter table: `image_url` and `video_url` are required http(s)
  URLs (publicly accessible, so no data URIs); `character_orientation` is `video` or
  `image` and defaults to `video` (the page's example; no default is stated);
  `keep_original_sound` is a boolean, default true. Fields the page does not list (e.g.
  `prompt`) are refused with 400 rather than ignored, so a client cannot believe an
  undocumented field is honoured.
- Request ids are UUID4 strings (the page's example is a masked UUID).
- The result endpoint answers 400 without a string `request_id` and 404
  `{"error":"Request not found"}` for an unknown one.
- Result bodies: IN_QUEUE `{status, request_id}`; IN_PROGRESS adds `progress_percent`
  (an integer 0-99 from the time spent running vs `state_seconds`) and
  `estimated_remaining_seconds` (an integer, the rest of `state_seconds`, 0 once the
  render overruns it); COMPLETED adds `output_url`, `duration_seconds`, `width`, `height`,
  `content_type` ("video/mp4") and `has_audio` of the rendered file; FAILED adds
  `error_message` (the `fail_task` message, or what was wrong with an input).
- Input limits are checked while IN_PROGRESS (inputs are fetched asynchronously) and fail the
  request: the documented ones (image JPEG/PNG; video "under 10 seconds", read as <= 10 s
  whatever the orientation) plus the upstream model's (each image side >= 300 px, aspect
  2:5..5:2, video >= 3 s). Byte caps are not documented: the upstream 10 MB image and 100 MB
  video are used.
- Output: Standard tier, so the motion video scaled down to 720 px height (never up), with
  the reference audio unless `keep_original_sound` is false.
- No callbacks (none documented): the `callbacks` knob has nothing to switch.
"""

from __future__ import annotations

import hmac
import math
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from .jobs import InputError, InputSpec, JobSpec, SimJob
from .provider import Provider, SandboxContext
from .render import ImageProbe, VideoProbe
from .wire import Request, Response

_API = "/kling-video-v2-6-standard-motion-control/v1/kling-video-v2-6-standard-motion-control"
SUBMIT_PATH = f"{_API}-request"
RESULT_PATH = f"{_API}-request-result"
ORIENTATIONS = ("video", "image")
FIELDS = ("image_url", "video_url", "character_orientation", "keep_original_sound")
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 100 * 1024 * 1024
MAX_VIDEO_SECONDS = 10.0
OUTPUT_HEIGHT = 720  # Standard
QUEUED_MESSAGE = "Motion transfer job queued successfully"
INVALID = "Invalid request parameters"

STATES = {
    "pending": "IN_QUEUE",
    "queued": "IN_QUEUE",
    "running": "IN_PROGRESS",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
}
# the page's "Common Status Codes and Responses" table, used by the fail_submit knob
DOCUMENTED_ERRORS: dict[int, str] = {
    400: INVALID,
    401: "Invalid or missing authentication",
    403: "Access denied for this operation",
    404: "Endpoint not found",
    429: "Rate limit exceeded, please retry later",
    500: "An unexpected error occurred, please try again later",
}


class ValidationError(Exception):
    pass


def _error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status=status)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class PixazoProvider(Provider):
    name = "pixazo"
    default_api_key = "sandbox-pixazo-key"

    def __init__(self, ctx: SandboxContext, api_key: str | None = None) -> None:
        super().__init__(ctx, api_key)
        self._routes = {("POST", SUBMIT_PATH): "request", ("POST", RESULT_PATH): "result"}

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        return self._routes.get((req.method, req.path))

    def dispatch(self, endpoint: str, req: Request) -> Response:
        if not self._authorized(req):
            return _error(401, DOCUMENTED_ERRORS[401])
        header_problem = _header_problem(req)
        if header_problem:
            return _error(400, f"{INVALID}: {header_problem}")
        if endpoint == "request":
            return self.submit(req)
        return self.result(req)

    def not_found(self, req: Request) -> Response:
        # An API gateway matches method + path together: a wrong method is just not found.
        return _error(404, DOCUMENTED_ERRORS[404])

    def _authorized(self, req: Request) -> bool:
        key = (req.header("Ocp-Apim-Subscription-Key") or "").strip()
        return bool(key) and hmac.compare_digest(key, self.api_key)

    # --------------------------------------------------------------- submit

    def submit(self, req: Request) -> Response:
        code = self.take_submit_failure()
        if code is not None:
            status = code if 400 <= code <= 599 else 500
            return _error(status, DOCUMENTED_ERRORS.get(code, f"Simulated error {code}"))
        try:
            body = validate_submit(_json(req))
        except ValidationError as exc:
            return _error(400, f"{INVALID}: {exc}")

        request_id = str(uuid.uuid4())
        config = self.config()
        job = SimJob(task_id=request_id, provider=self.name, request=body, state_names=STATES, config=config)
        orientation = body["character_orientation"]
        spec = JobSpec(
            image=InputSpec("image_url", body["image_url"], MAX_IMAGE_BYTES),
            video=InputSpec("video_url", body["video_url"], MAX_VIDEO_BYTES),
            output_name=f"{request_id}.mp4",
            keep_sound=body["keep_original_sound"],
            max_height=OUTPUT_HEIGHT,
            state_seconds=config["state_seconds"],
            fail_message=config["fail_task"],
            check_inputs=lambda img, vid: check_inputs(img, vid, orientation),
        )
        self.ctx.tasks[request_id] = job
        self.ctx.jobs.run(
            job, spec, self.ctx.files_dir(self.name), f"{self.ctx.base_url(self.name)}/files/{request_id}.mp4"
        )
        return Response.json({"status": "IN_QUEUE", "request_id": request_id, "message": QUEUED_MESSAGE})

    # --------------------------------------------------------------- result

    def result(self, req: Request) -> Response:
        try:
            body = _json(req)
        except ValidationError as exc:
            return _error(400, f"{INVALID}: {exc}")
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not request_id.strip():
            return _error(400, f"{INVALID}: request_id is required")
        job = self.ctx.tasks.get(request_id.strip())
        if job is None or job.provider != self.name:
            return _error(404, "Request not found")
        return Response.json(snapshot(job))


# ------------------------------------------------------------------- pure helpers


def _header_problem(req: Request) -> str | None:
    if req.media_type() != "application/json":
        return "Content-Type must be application/json"
    if (req.header("Cache-Control") or "").strip().lower() != "no-cache":
        return "Cache-Control must be no-cache"
    return None


def _json(req: Request) -> Any:
    try:
        return req.json()
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("body is not valid JSON") from None


def validate_submit(body: Any) -> dict[str, Any]:
    """Check a submit body against the page's parameter table; returns it with defaults."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    unknown = sorted(k for k in body if k not in FIELDS)
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}")
    for name in ("image_url", "video_url"):
        if body.get(name) in (None, ""):
            raise ValidationError(f"{name} is required")
        if not _is_http_url(body[name]):
            raise ValidationError(f"{name} must be a publicly accessible http(s) URL")
    orientation = body.get("character_orientation", "video")
    if orientation not in ORIENTATIONS:
        raise ValidationError("character_orientation must be one of: video, image")
    keep_sound = body.get("keep_original_sound", True)
    if not isinstance(keep_sound, bool):
        raise ValidationError("keep_original_sound must be a boolean")
    return {**body, "character_orientation": orientation, "keep_original_sound": keep_sound}


def check_inputs(img: ImageProbe, vid: VideoProbe, orientation: str) -> None:
    """Pixazo's documented limits (JPEG/PNG, video under 10 s) plus the upstream model's."""
    if img.format not in ("png", "jpeg"):
        raise InputError(f"image_url: unsupported image format {img.format or 'unknown'} (JPEG/PNG)")
    if min(img.width, img.height) < 300:
        raise InputError(f"image_url: image is {img.width}x{img.height}, each side must be >= 300 px")
    if not 0.4 <= img.width / img.height <= 2.5:
        raise InputError("image_url: image aspect ratio must be between 2:5 and 5:2")
    if vid.duration < 3.0 - 0.05:
        raise InputError(f"video_url: video is {vid.duration:.1f} s, minimum is 3 s")
    if vid.duration > MAX_VIDEO_SECONDS + 0.05:
        raise InputError(
            f"video_url: video is {vid.duration:.1f} s, it must be under {MAX_VIDEO_SECONDS:.0f} s "
            f"(character_orientation={orientation})"
        )


def snapshot(job: SimJob) -> dict[str, Any]:
    """The result endpoint's body for a job (a consistent snapshot)."""
    with job.lock:
        state = STATES[job.phase]
        out: dict[str, Any] = {"status": state, "request_id": job.task_id}
        if state == "IN_PROGRESS":
            out.update(_progress(job))
        elif state == "COMPLETED":
            media = job.media or {}
            out.update({
                "output_url": job.output_url,
                "duration_seconds": media.get("duration"),
                "width": media.get("width"),
                "height": media.get("height"),
                "content_type": "video/mp4",
                "has_audio": bool(media.get("has_audio")),
            })
        elif state == "FAILED":
            out["error_message"] = job.fail_message or "internal error"
        return out


def _progress(job: SimJob) -> dict[str, int]:
    planned = float(job.config.get("state_seconds", 0.5))
    spent = time.time() - (job.started_at or time.time())
    percent = 99 if planned <= 0 else min(99, int(100 * spent / planned))
    return {
        "progress_percent": max(0, percent),
        "estimated_remaining_seconds": max(0, math.ceil(planned - spent)),
    }
