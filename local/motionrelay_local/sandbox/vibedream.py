"""VibeDream simulator for `kling-v2.6-pro-motion` (docs/providers.md section 1).

Written from VibeDream's model page only. Mounted at `{root}/vibedream`, so
`base_url("vibedream")` plays the role of `https://api.vibedream.ai`:

- `POST /api/v1/models/kling-v2.6-pro-motion/generate` `{image, video, character_orientation,
  prompt?, negative_prompt?, keep_original_sound?}` -> `{id, status: "processing", statusUrl,
  estimatedTime, costCents, createdAt}`
- `GET  /api/v1/predictions/{id}` -> `{id, modelId, modelName, status, outputs, error,
  createdAt, completedAt}`; status `processing` until final, then `completed` or `failed`
- `GET  /files/<id>.mp4` -> the rendered video (no auth, like the public assets host)

Choices where the docs are silent or ambiguous (keep in sync with the sandbox report):

- Error codes and bodies are NOT documented. Every error is `{"error": <str>}` (the shape
  of the prediction's own `error` field) with a conventional HTTP status: 401 for a
  missing/wrong `Authorization: Bearer <key>` (checked first), 400 for a POST whose
  Content-Type is not application/json, for malformed JSON and for validation errors,
  404 for another model id in the generate path, for an unknown prediction id and for
  unknown paths, 405 for a known path with the wrong method.
- `fail_submit` knob: 400 "Invalid request", 401 "Invalid API key", 402 "Insufficient
  credits", 403 "Forbidden", 404 "Model not found", 429 "Rate limit exceeded", 500
  "Internal server error", 503 "Service unavailable"; any other code answers that HTTP status
  (500 when it is not one) with "Simulated error <code>". No `Retry-After`.
- Validation follows the schema table: `image` and `video` are required public http(s)
  URLs; `character_orientation` is `image` or `video` - the table marks it required but
  also gives the default `image`, so it may be omitted and then defaults to `image`;
  `prompt` and `negative_prompt` are optional strings (no length is stated: the upstream
  2500 characters are enforced); `keep_original_sound` is a boolean, default true. Fields
  the schema does not list are refused with 400 rather than ignored.
- Submit answers HTTP 200 (the status code is not stated) with `id` a UUID4,
  `statusUrl` this sandbox's prediction URL, `estimatedTime` "60-180s" and `costCents` 37
  (the page's example and "from $0.37/run"), `createdAt` ISO 8601 UTC with milliseconds.
- The prediction is `processing` from submit until final (no queued state). `outputs` is
  `[<base>/files/<id>.mp4]` when completed, else null; `error` is the `fail_task`
  message (or what was wrong with an input) when failed, else null; `completedAt` is null
  until final. No progress, cost or ETA fields (none documented there).
- Input limits are checked while processing (inputs are fetched asynchronously) and fail the
  prediction: image <= 10 MB, JPEG/PNG (the upload description; the generic "Accepted"
  line also names GIF/WebP), each side >= 300 px, aspect 1:2.5..2.5:1; video <= 10 MB, each
  side >= 300 px, 3..30 s and <= 10 s when `character_orientation` is `image` (the upstream
  model's durations; the page states none).
- Output: Pro tier, so the motion video scaled down to 1080 px height (never up), with the
  reference audio unless `keep_original_sound` is false.
- No callbacks (none documented): the `callbacks` knob has nothing to switch.
"""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .jobs import InputError, InputSpec, JobSpec, SimJob
from .provider import Provider
from .render import ImageProbe, VideoProbe
from .wire import Request, Response

MODEL = "kling-v2.6-pro-motion"
MODEL_NAME = "Kling 2.6 Pro Motion Control"
GENERATE = re.compile(r"^/api/v1/models/([^/]+)/generate$")
PREDICTION = re.compile(r"^/api/v1/predictions/([^/]+)$")
ORIENTATIONS = ("image", "video")
FIELDS = ("image", "video", "character_orientation", "prompt", "negative_prompt", "keep_original_sound")
MAX_PROMPT = 2500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 10 * 1024 * 1024
OUTPUT_HEIGHT = 1080  # Pro
ESTIMATED_TIME = "60-180s"
COST_CENTS = 37

STATES = {
    "pending": "processing",
    "queued": "processing",
    "running": "processing",
    "succeeded": "completed",
    "failed": "failed",
}
SUBMIT_FAILURES: dict[int, str] = {
    400: "Invalid request",
    401: "Invalid API key",
    402: "Insufficient credits",
    403: "Forbidden",
    404: "Model not found",
    429: "Rate limit exceeded",
    500: "Internal server error",
    503: "Service unavailable",
}


class ValidationError(Exception):
    pass


def _error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status=status)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class VibeDreamProvider(Provider):
    name = "vibedream"
    default_api_key = "sandbox-vibedream-key"

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        if req.method == "POST" and GENERATE.match(req.path):
            return "generate"
        if req.method == "GET" and PREDICTION.match(req.path):
            return "prediction"
        return None

    def dispatch(self, endpoint: str, req: Request) -> Response:
        if not self._authorized(req):
            return _error(401, "Invalid API key")
        if endpoint == "generate":
            return self.generate(req)
        match = PREDICTION.match(req.path)
        return self.prediction(match.group(1) if match else "")

    def not_found(self, req: Request) -> Response:
        if GENERATE.match(req.path) or PREDICTION.match(req.path):
            return _error(405, "Method not allowed")
        return _error(404, "Not found")

    def _authorized(self, req: Request) -> bool:
        scheme, _, token = (req.header("Authorization") or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.api_key)

    # --------------------------------------------------------------- generate

    def generate(self, req: Request) -> Response:
        match = GENERATE.match(req.path)
        if match is None or match.group(1) != MODEL:
            return _error(404, "Model not found")
        if req.media_type() != "application/json":
            return _error(400, "Content-Type must be application/json")
        code = self.take_submit_failure()
        if code is not None:
            status = code if 400 <= code <= 599 else 500
            return _error(status, SUBMIT_FAILURES.get(code, f"Simulated error {code}"))
        try:
            body = validate_generate(req.json())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "Request body is not valid JSON")
        except ValidationError as exc:
            return _error(400, str(exc))

        prediction_id = str(uuid.uuid4())
        config = self.config()
        job = SimJob(task_id=prediction_id, provider=self.name, request=body, state_names=STATES,
                     config=config)
        orientation = body["character_orientation"]
        spec = JobSpec(
            image=InputSpec("image", body["image"], MAX_IMAGE_BYTES),
            video=InputSpec("video", body["video"], MAX_VIDEO_BYTES),
            output_name=f"{prediction_id}.mp4",
            keep_sound=body["keep_original_sound"],
            max_height=OUTPUT_HEIGHT,
            state_seconds=config["state_seconds"],
            fail_message=config["fail_task"],
            check_inputs=lambda img, vid: check_inputs(img, vid, orientation),
        )
        self.ctx.tasks[prediction_id] = job
        base = self.ctx.base_url(self.name)
        self.ctx.jobs.run(job, spec, self.ctx.files_dir(self.name), f"{base}/files/{prediction_id}.mp4")
        return Response.json({
            "id": prediction_id,
            "status": "processing",
            "statusUrl": f"{base}/api/v1/predictions/{prediction_id}",
            "estimatedTime": ESTIMATED_TIME,
            "costCents": COST_CENTS,
            "createdAt": _iso(job.created_at),
        })

    # --------------------------------------------------------------- predictions

    def prediction(self, prediction_id: str) -> Response:
        job = self.ctx.tasks.get(prediction_id)
        if job is None or job.provider != self.name:
            return _error(404, "Prediction not found")
        return Response.json(snapshot(job))


# ------------------------------------------------------------------- pure helpers


def validate_generate(body: Any) -> dict[str, Any]:
    """Check a generate body against the page's schema table; returns it with defaults."""
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    unknown = sorted(k for k in body if k not in FIELDS)
    if unknown:
        raise ValidationError(f"Unknown parameter(s): {', '.join(unknown)}")
    for name in ("image", "video"):
        if body.get(name) in (None, ""):
            raise ValidationError(f"{name} is required")
        if not _is_http_url(body[name]):
            raise ValidationError(f"{name} must be a public http(s) URL")
    orientation = body.get("character_orientation", "image")
    if orientation not in ORIENTATIONS:
        raise ValidationError("character_orientation must be one of: image, video")
    for name in ("prompt", "negative_prompt"):
        text = body.get(name)
        if text is not None and not isinstance(text, str):
            raise ValidationError(f"{name} must be a string")
        if text is not None and len(text) > MAX_PROMPT:
            raise ValidationError(f"{name} must be at most {MAX_PROMPT} characters")
    keep_sound = body.get("keep_original_sound", True)
    if not isinstance(keep_sound, bool):
        raise ValidationError("keep_original_sound must be a boolean")
    return {**body, "character_orientation": orientation, "keep_original_sound": keep_sound}


def check_inputs(img: ImageProbe, vid: VideoProbe, orientation: str) -> None:
    """The page's input limits (bytes are capped while downloading) and the upstream durations."""
    if img.format not in ("png", "jpeg"):
        raise InputError(f"image: unsupported image format {img.format or 'unknown'} (JPG/PNG)")
    if min(img.width, img.height) < 300:
        raise InputError(f"image: image is {img.width}x{img.height}, each side must be >= 300 px")
    if not 0.4 <= img.width / img.height <= 2.5:
        raise InputError("image: aspect ratio must be between 1:2.5 and 2.5:1")
    if min(vid.width, vid.height) < 300:
        raise InputError(f"video: video is {vid.width}x{vid.height}, each side must be >= 300 px")
    max_s = 10.0 if orientation == "image" else 30.0
    if vid.duration < 3.0 - 0.05:
        raise InputError(f"video: video is {vid.duration:.1f} s, minimum is 3 s")
    if vid.duration > max_s + 0.05:
        raise InputError(
            f"video: video is {vid.duration:.1f} s, maximum is {max_s:.0f} s "
            f"for character_orientation={orientation}"
        )


def snapshot(job: SimJob) -> dict[str, Any]:
    """The prediction resource for a job (a consistent snapshot)."""
    with job.lock:
        status = STATES[job.phase]
        return {
            "id": job.task_id,
            "modelId": MODEL,
            "modelName": MODEL_NAME,
            "status": status,
            "outputs": [job.output_url] if status == "completed" else None,
            "error": (job.fail_message or "internal error") if status == "failed" else None,
            "createdAt": _iso(job.created_at),
            "completedAt": _iso(job.finished_at) if status in ("completed", "failed") else None,
        }
