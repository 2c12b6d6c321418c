"""Novita simulator for `kling-v2.6-pro-motion-control` (docs/providers.md section 3; seeds/002).

Written from Novita's documentation only (the model page, Task Result, Webhook, API Error
Codes and the errors guide). Mounted at `{root}/novita`, so `base_url("novita")` plays the
role of `https://api.novita.ai`:

- `POST /v3/async/kling-v2.6-pro-motion-control` -> `{"task_id": "<uuid>"}`
- `GET  /v3/async/task-result?task_id=...` -> `{task{...}, images[], videos[], audios[], extra{}}`
- `GET  /files/<task_id>.mp4` -> the rendered video (no auth, like the presigned S3 link)

Choices where the docs are silent or ambiguous (keep in sync with the sandbox report):

- Error envelope: not documented. Errors answer `{"code": <HTTP status>, "reason": <error
  name>, "message": <text>}`, the shape integrators observe live (e.g. `{"code":403,
  "reason":"INVALID_API_KEY","message":"invalid api-key"}`), with the HTTP status the
  error-code table gives for that name.
- Auth: no `Authorization` header answers MISSING_API_KEY (400, as the table says); a wrong
  key or a scheme other than `Bearer` answers INVALID_API_KEY (403). Auth is checked before
  anything else on both endpoints. A POST whose Content-Type is not `application/json` (a
  required header) or whose body is not a JSON object answers INVALID_REQUEST_BODY (400).
  The GET does not check Content-Type: it has no body to describe.
- Unknown paths and methods answer API_NOT_FOUND (404).
- Validation (INVALID_REQUEST_BODY, message naming the field): `image`, `video` and
  `character_orientation` are required; `character_orientation` in image|video (no default:
  it is required); `video` must be an http(s) URL; `image` an http(s) URL or base64 (raw, or
  a `data:image/...;base64,` URI); `prompt` a string (no length limit documented, none
  enforced); `negative_prompt` a string <= 2500 characters; `keep_original_sound` a boolean
  (default true); `extra` an object, `extra.webhook` an object whose `url` is an http(s) URL.
  Unknown keys are ignored. Webhook test mode (`extra.webhook.test_mode.enabled`) is not
  simulated and is refused with INVALID_REQUEST_BODY rather than silently running a real job.
- Base64 images are decoded and checked at submit: undecodable -> INVALID_REQUEST_BODY,
  over 10 MiB -> IMAGE_FILE_EXCEEDS_MAX_SIZE, not PNG/JPEG -> INVALID_IMAGE_FORMAT. The bytes
  are then served to the job runner from a sandbox-internal `GET /_inline/<token>` (no auth,
  dropped when the task ends). The sandbox server refuses bodies over 10 MiB, so the largest
  inline image it can take is ~7.5 MiB.
- URL inputs are fetched while the task is processing and checked there (Novita is async);
  a violation fails the task with `task.reason`: image png/jpeg <= 10 MiB, each side >= 300 px,
  aspect 1:2.5..2.5:1; video <= 10 MiB, each side >= 300 px, aspect 1:2.5..2.5:1, 3..30 s and
  <= 10 s when `character_orientation` is `image`.
- Statuses: pending and queued -> TASK_STATUS_QUEUED, running -> TASK_STATUS_PROCESSING, then
  TASK_STATUS_SUCCEED or TASK_STATUS_FAILED (no CANCELED: there is no cancel endpoint).
- `task.progress_percent`: 0 while queued, then the share of `state_seconds` spent processing
  (capped at 99 until the video exists), 100 on success, 0 on failure (the docs' failure
  example). `task.eta`: whole seconds left of the simulated timeline (queued + processing,
  `state_seconds` each), at least 1 while unfinished, 0 once final.
- `task.task_type` is not documented for this model: "KLING_V2_6_PRO_MOTION_CONTROL".
  `task.reason` is "" unless failed.
- `videos` is [] until success, then one `{video_url: {base}/files/<task_id>.mp4,
  video_url_ttl: "3600", video_type: "mp4"}` (3600 as in the webhook example). `images` and
  `audios` are always []. `extra` carries `enable_nsfw_detection: false`, `debug_info` with
  `request_info` (the request JSON, inline image elided) and `submit_time_ms` /
  `execute_time_ms` / `complete_time_ms` as strings of ms ("" until they happen, all strings
  as the docs type them), and echoes `webhook` when given (as in the webhook example).
- Output: the motion video's length, frame rate and (with `keep_original_sound`) audio,
  scaled down to 1080 px height (Pro = 1080p), never up.
- Callback (when `extra.webhook.url` is set and the `callbacks` knob is on), sent once the
  task is final: `{"event_type":"ASYNC_TASK_RESULT","payload":<task-result body>}` with only
  `Content-Type: application/json` (Novita signs nothing). Any 2xx counts as delivered; a
  non-2xx answer or no answer within `callback_timeout` (5 s, as documented) is retried up
  to five times (documented), after 1, 2, 4, 8 and 16 s (delays not documented); both knobs.
- `fail_submit` knob (HTTP-status-like codes) -> documented names: 400/422
  INVALID_REQUEST_BODY (400), 401 INVALID_API_KEY (401, the errors guide's "401: API key
  missing or incorrect"), 402 BILLING_BALANCE_NOT_ENOUGH (400), 403 API_NOT_ALLOWED (403),
  404 API_NOT_FOUND (404), 429 RATE_LIMIT_EXCEEDED (429), 500 CREATE_TASK_FAILED (500).
  503 and 504 (the guide's overload/timeout answers, no name documented) come from the load
  balancer in front: a plain-text body. Any other code answers that status (500 if it is
  not one) with reason "UNKNOWN_ERROR". The extra knob `fail_submit_reason` (a documented
  error name, e.g. "ILLEGAL_PROMPT") overrides the name and uses that name's status.
- Task ids are UUID4 strings, like the docs' examples.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import secrets
import time
import uuid
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .delivery import deliver_callback, json_headers
from .jobs import InputError, InputSpec, JobSpec, SimJob
from .provider import Provider, SandboxContext
from .render import ImageProbe, VideoProbe
from .wire import Request, Response

SUBMIT_PATH = "/v3/async/kling-v2.6-pro-motion-control"
RESULT_PATH = "/v3/async/task-result"
INLINE_PREFIX = "/_inline/"
TASK_TYPE = "KLING_V2_6_PRO_MOTION_CONTROL"
ORIENTATIONS = ("image", "video")
MAX_NEGATIVE_PROMPT = 2500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 10 * 1024 * 1024
OUTPUT_HEIGHT = 1080
VIDEO_URL_TTL = "3600"
CALLBACK_TIMEOUT = 5.0
CALLBACK_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)

STATES = {
    "pending": "TASK_STATUS_QUEUED",
    "queued": "TASK_STATUS_QUEUED",
    "running": "TASK_STATUS_PROCESSING",
    "succeeded": "TASK_STATUS_SUCCEED",
    "failed": "TASK_STATUS_FAILED",
}

# The "Image / Video / Audio" table of the API Error Codes page: name -> (HTTP status, text).
ERRORS: dict[str, tuple[int, str]] = {
    "INVALID_REQUEST_BODY": (400, "Request parameter validation failed"),
    "IMAGE_FILE_EXCEEDS_MAX_SIZE": (400, "Image size exceeds limit"),
    "INVALID_IMAGE_FORMAT": (400, "Image format does not meet requirements"),
    "IMAGE_EXCEEDS_MAX_RESOLUTION": (400, "Image resolution exceeds limit"),
    "INVALID_IMAGE_SIZE": (400, "Image width or height exceeds limit"),
    "API_NOT_FOUND": (404, "API not found"),
    "IMAGE_NO_FACE_DETECTED": (400, "No face detected"),
    "ILLEGAL_PROMPT": (400, "Prompt contains inappropriate content"),
    "ILLEGAL_IMAGE_CONTENT": (400, "Image contains inappropriate content"),
    "BILLING_FAILED": (500, "Billing service error"),
    "BILLING_AUTH_FAILED": (403, "Billing service authentication failed"),
    "BILLING_BALANCE_NOT_ENOUGH": (400, "Insufficient balance"),
    "MISSING_API_KEY": (400, "API Key not provided"),
    "INVALID_API_KEY": (403, "invalid api-key"),
    "FEATURE_NOT_ALLOWED": (403, "No permission to upload model"),
    "API_NOT_ALLOWED": (403, "No permission to use this API"),
    "RATE_LIMIT_EXCEEDED": (429, "Rate limit exceeded"),
    "NEED_REAL_NAME_VERIFY": (403, "Enterprise verification not completed"),
    "CREATE_TASK_FAILED": (500, "Failed to create task"),
    "TASK_NOT_FOUND": (404, "Task not found"),
    "GET_RESULT_FAILED": (500, "Failed to get task result"),
    "TASK_FAILED": (500, "Task execution failed"),
}

# fail_submit code -> (error name, HTTP status)
SUBMIT_FAILURES: dict[int, tuple[str, int]] = {
    400: ("INVALID_REQUEST_BODY", 400),
    401: ("INVALID_API_KEY", 401),
    402: ("BILLING_BALANCE_NOT_ENOUGH", 400),
    403: ("API_NOT_ALLOWED", 403),
    404: ("API_NOT_FOUND", 404),
    422: ("INVALID_REQUEST_BODY", 400),
    429: ("RATE_LIMIT_EXCEEDED", 429),
    500: ("CREATE_TASK_FAILED", 500),
}
GATEWAY_FAILURES = {503: "503 Service Temporarily Unavailable", 504: "504 Gateway Time-out"}


class ValidationError(Exception):
    def __init__(self, message: str, reason: str = "INVALID_REQUEST_BODY") -> None:
        super().__init__(message)
        self.reason = reason


def error(reason: str, message: str | None = None, status: int | None = None) -> Response:
    """Novita's error answer: `{"code": <status>, "reason": <name>, "message": <text>}`."""
    default_status, default_message = ERRORS.get(reason, (500, "Unknown error"))
    status = status or default_status
    return Response.json({"code": status, "reason": reason, "message": message or default_message}, status)


def _reason_knob(value: Any) -> str | None:
    if value is not None and value not in ERRORS:
        raise ValueError("must be null or a documented Novita error name")
    return value


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _any_2xx(status: int) -> bool:
    """Novita retries a callback only on "non-2xx"."""
    return 200 <= status < 300


class NovitaProvider(Provider):
    name = "novita"
    default_api_key = "sandbox-novita-key"
    extra_knobs: ClassVar[dict[str, tuple[Any, Any]]] = {
        "fail_submit_reason": (None, _reason_knob),  # documented error name for fail_submit
    }
    knob_defaults: ClassVar[dict[str, Any]] = {
        "callback_timeout": CALLBACK_TIMEOUT,
        "callback_retry_delays": list(CALLBACK_RETRY_DELAYS),
    }

    def __init__(self, ctx: SandboxContext, api_key: str | None = None) -> None:
        super().__init__(ctx, api_key)
        self._routes = {("POST", SUBMIT_PATH): "submit", ("GET", RESULT_PATH): "task-result"}
        self._inline: dict[str, bytes] = {}  # token -> decoded base64 image, until its task ends

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        if req.method in ("GET", "HEAD") and req.path.startswith(INLINE_PREFIX):
            return "inline"
        return self._routes.get((req.method, req.path))

    def dispatch(self, endpoint: str, req: Request) -> Response:
        if endpoint == "inline":
            return self._serve_inline(req.path[len(INLINE_PREFIX):])
        refused = self._check_auth(req)
        if refused is not None:
            return refused
        if endpoint == "submit":
            return self.submit(req)
        return self.task_result(req)

    def not_found(self, req: Request) -> Response:
        return error("API_NOT_FOUND")

    def _check_auth(self, req: Request) -> Response | None:
        header = (req.header("Authorization") or "").strip()
        if not header:
            return error("MISSING_API_KEY")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.api_key):
            return error("INVALID_API_KEY")
        return None

    # --------------------------------------------------------------- submit

    def submit(self, req: Request) -> Response:
        failure = self._submit_failure()
        if failure is not None:
            return failure
        if req.media_type() != "application/json":
            return error("INVALID_REQUEST_BODY", "Content-Type must be application/json")
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            return error("INVALID_REQUEST_BODY", "request body is not valid JSON")
        try:
            checked = validate_submit(body)
        except ValidationError as exc:
            return error(exc.reason, str(exc))
        return Response.json({"task_id": self._start(body, checked)})

    def _submit_failure(self) -> Response | None:
        code = self.take_submit_failure()
        if code is None:
            return None
        reason = self.config()["fail_submit_reason"]
        if reason is not None:
            return error(reason)
        if code in GATEWAY_FAILURES:
            text = GATEWAY_FAILURES[code].encode()
            return Response(code, text, {"Content-Type": "text/plain"})
        if code in SUBMIT_FAILURES:
            name, status = SUBMIT_FAILURES[code]
            return error(name, status=status)
        return error("UNKNOWN_ERROR", "Simulated error", status=code if 400 <= code <= 599 else 500)

    def _start(self, body: dict[str, Any], checked: dict[str, Any]) -> str:
        task_id = str(uuid.uuid4())
        config = self.config()
        image_url = body["image"]
        if checked["image_bytes"] is not None:
            token = secrets.token_hex(16)
            with self.ctx.lock:
                self._inline[token] = checked["image_bytes"]
            image_url = f"{self.ctx.base_url(self.name)}{INLINE_PREFIX}{token}"
            checked["inline_token"] = token
        job = SimJob(
            task_id=task_id,
            provider=self.name,
            request=body,
            state_names=STATES,
            callback_url=checked["webhook_url"],
            config=config,
            extra={
                "request_info": _request_info(body),
                "webhook": (body.get("extra") or {}).get("webhook"),
                "inline_token": checked.get("inline_token"),
            },
        )
        orientation = body["character_orientation"]
        spec = JobSpec(
            image=InputSpec("image", image_url, MAX_IMAGE_BYTES),
            video=InputSpec("video", body["video"], MAX_VIDEO_BYTES),
            output_name=f"{task_id}.mp4",
            keep_sound=checked["keep_original_sound"],
            max_height=OUTPUT_HEIGHT,
            state_seconds=config["state_seconds"],
            fail_message=config["fail_task"],
            check_inputs=lambda img, vid: check_inputs(img, vid, orientation),
            on_finish=self._on_finish,
        )
        self.ctx.tasks[task_id] = job
        self.ctx.jobs.run(
            job, spec, self.ctx.files_dir(self.name), f"{self.ctx.base_url(self.name)}/files/{task_id}.mp4"
        )
        return task_id

    def _serve_inline(self, token: str) -> Response:
        with self.ctx.lock:
            data = self._inline.get(token)
        if data is None:
            return error("API_NOT_FOUND")
        return Response(200, data, {"Content-Type": "application/octet-stream"})

    # --------------------------------------------------------------- task-result

    def task_result(self, req: Request) -> Response:
        task_id = (req.query_one("task_id") or "").strip()
        if not task_id:
            return error("INVALID_REQUEST_BODY", "task_id is required")
        job = self.ctx.tasks.get(task_id)
        if job is None or job.provider != self.name:
            return error("TASK_NOT_FOUND")
        return Response.json(task_result(job))

    # --------------------------------------------------------------- callbacks

    def _on_finish(self, job: SimJob) -> None:
        token = job.extra.get("inline_token")
        if token:
            with self.ctx.lock:
                self._inline.pop(token, None)
        if not job.callback_url or not job.config.get("callbacks", True):
            return
        event = {"event_type": "ASYNC_TASK_RESULT", "payload": task_result(job)}
        deliver_callback(
            self.ctx,
            provider=self.name,
            task_id=job.task_id,
            url=job.callback_url,
            body=json.dumps(event, separators=(",", ":")).encode(),
            headers=json_headers,  # no signature: Novita documents none
            timeout=job.config.get("callback_timeout", CALLBACK_TIMEOUT),
            retry_delays=job.config.get("callback_retry_delays", CALLBACK_RETRY_DELAYS),
            accepted=_any_2xx,
        )


# ------------------------------------------------------------------- pure helpers


def validate_submit(body: Any) -> dict[str, Any]:
    """Check a submit body against the documented schema; returns what the job needs."""
    if not isinstance(body, dict):
        raise ValidationError("request body must be a JSON object")
    for name in ("image", "video", "character_orientation"):
        if body.get(name) in (None, ""):
            raise ValidationError(f"{name} is required")
    if not _is_http_url(body["video"]):
        raise ValidationError("video must be an http(s) URL")
    image_bytes = None if _is_http_url(body["image"]) else decode_image(body["image"])
    if body["character_orientation"] not in ORIENTATIONS:
        raise ValidationError("character_orientation must be one of: image, video")
    for name in ("prompt", "negative_prompt"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ValidationError(f"{name} must be a string")
    if len(body.get("negative_prompt") or "") > MAX_NEGATIVE_PROMPT:
        raise ValidationError(f"negative_prompt must be at most {MAX_NEGATIVE_PROMPT} characters")
    keep = body.get("keep_original_sound", True)
    if not isinstance(keep, bool):
        raise ValidationError("keep_original_sound must be a boolean")
    return {"image_bytes": image_bytes, "keep_original_sound": keep, "webhook_url": _webhook_url(body)}


def _webhook_url(body: dict[str, Any]) -> str | None:
    extra = body.get("extra")
    if extra is None:
        return None
    if not isinstance(extra, dict):
        raise ValidationError("extra must be an object")
    webhook = extra.get("webhook")
    if webhook is None:
        return None
    if not isinstance(webhook, dict):
        raise ValidationError("extra.webhook must be an object")
    test_mode = webhook.get("test_mode")
    if isinstance(test_mode, dict) and test_mode.get("enabled"):
        raise ValidationError("extra.webhook.test_mode is not simulated by the sandbox")
    url = webhook.get("url")
    if not _is_http_url(url):
        raise ValidationError("extra.webhook.url must be an http(s) URL")
    return url


def decode_image(value: Any) -> bytes:
    """A base64 `image` (raw or a data URI), checked like Novita checks an uploaded image."""
    if not isinstance(value, str):
        raise ValidationError("image must be a string (URL or base64)")
    text = value.strip()
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise ValidationError("image data URI must be base64-encoded")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("image must be an http(s) URL or base64-encoded") from None
    if not data:
        raise ValidationError("image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ValidationError("image exceeds 10MB", "IMAGE_FILE_EXCEEDS_MAX_SIZE")
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise ValidationError("image must be .jpg, .jpeg or .png", "INVALID_IMAGE_FORMAT")
    return data


def _request_info(body: dict[str, Any]) -> str:
    shown = dict(body)
    if isinstance(shown.get("image"), str) and not _is_http_url(shown["image"]):
        shown["image"] = f"<base64, {len(shown['image'])} chars>"
    return json.dumps(shown, separators=(",", ":"), ensure_ascii=False)


def _aspect_ok(width: int, height: int) -> bool:
    return 1 / 2.5 <= width / height <= 2.5


def check_inputs(img: ImageProbe, vid: VideoProbe, orientation: str) -> None:
    """Novita's documented input limits, applied once the files are fetched."""
    if img.format not in ("png", "jpeg"):
        raise InputError(f"image: unsupported format {img.format or 'unknown'} (jpg/jpeg/png)")
    if min(img.width, img.height) < 300:
        raise InputError(f"image: {img.width}x{img.height}, width and height must be >= 300px")
    if not _aspect_ok(img.width, img.height):
        raise InputError("image: aspect ratio must be between 1:2.5 and 2.5:1")
    if min(vid.width, vid.height) < 300:
        raise InputError(f"video: {vid.width}x{vid.height}, width and height must be >= 300px")
    if not _aspect_ok(vid.width, vid.height):
        raise InputError("video: aspect ratio must be between 1:2.5 and 2.5:1")
    max_s = 10.0 if orientation == "image" else 30.0
    if vid.duration < 3.0 - 0.05:
        raise InputError(f"video: {vid.duration:.1f} s, duration must be at least 3 seconds")
    if vid.duration > max_s + 0.05:
        raise InputError(
            f"video: {vid.duration:.1f} s, at most {max_s:.0f} seconds "
            f"with character_orientation={orientation}"
        )


def _ms(t: float | None) -> str:
    return "" if t is None else str(int(t * 1000))


def _progress_and_eta(job: SimJob, now: float) -> tuple[int, int]:
    """Simulated progress_percent and eta (whole seconds) for an unfinished task."""
    step = float(job.config.get("state_seconds", 0.5))
    expected_end = job.created_at + 3 * step  # pending + queued + processing
    eta = max(1, math.ceil(expected_end - now))
    if job.phase != "running" or job.started_at is None:
        return 0, eta
    share = (now - job.started_at) / step if step > 0 else 1.0
    return max(0, min(99, int(share * 100))), eta


def task_result(job: SimJob) -> dict[str, Any]:
    """The Task Result body for a job (a consistent snapshot); also the webhook payload."""
    with job.lock:
        status = STATES[job.phase]
        succeeded, failed = job.phase == "succeeded", job.phase == "failed"
        if succeeded:
            progress, eta = 100, 0
        elif failed:
            progress, eta = 0, 0
        else:
            progress, eta = _progress_and_eta(job, time.time())
        videos = []
        if succeeded:
            videos = [{"video_url": job.output_url, "video_url_ttl": VIDEO_URL_TTL, "video_type": "mp4"}]
        extra: dict[str, Any] = {
            "enable_nsfw_detection": False,
            "debug_info": {
                "request_info": job.extra["request_info"],
                "submit_time_ms": _ms(job.created_at),
                "execute_time_ms": _ms(job.started_at),
                "complete_time_ms": _ms(job.finished_at),
            },
        }
        if job.extra.get("webhook") is not None:
            extra["webhook"] = job.extra["webhook"]
        return {
            "task": {
                "task_id": job.task_id,
                "task_type": TASK_TYPE,
                "status": status,
                "reason": job.fail_message if failed else "",
                "eta": eta,
                "progress_percent": progress,
            },
            "images": [],
            "videos": videos,
            "audios": [],
            "extra": extra,
        }
