"""Kie.ai Market API simulator for `kling-2.6/motion-control` (docs/providers.md section 4).

Written from Kie's documentation only. Mounted at `{root}/kie`, so `base_url("kie")`
plays the role of `https://api.kie.ai`:

- `POST /api/v1/jobs/createTask` -> `{"code":200,"msg":"success","data":{"taskId":...}}`
- `GET  /api/v1/jobs/recordInfo?taskId=...` -> `{"code":200,"msg":"success","data":{...}}`
- `GET  /files/<taskId>.mp4` -> the rendered video (no auth, like a public CDN link)

Choices where the docs are silent or ambiguous (keep in sync with the sandbox report):

- Auth: a missing/wrong `Authorization: Bearer <key>` answers HTTP 401 with body
  `{"code":401,"msg":"You do not have access permissions"}`. The docs group a missing
  `Content-Type: application/json` with it, so a POST without that media type gets the
  same 401 answer.
- Error envelope: `{"code": <int>, "msg": <str>}` without `data`. Request-level errors
  answer HTTP 200 with the code in the body (Kie is known to do so): validation 422,
  recordInfo's 400 (`taskId parameter is required`) and 404 (`Task not found`).
- `fail_submit` knob: 429 and 500 are answered as real HTTP statuses (rate limiter /
  server failure, which sit in front of the application), any other code (402, 422,
  433, 455, 501, 505, ...) as HTTP 200 with that body code. Always the same envelope.
- Validation follows the schema: `model` must be `kling-2.6/motion-control`;
  `input_urls`/`video_urls` must be arrays of exactly one http(s) URL (no data URIs:
  "file URL after upload, not file content"); `prompt` a string <= 2500 characters;
  `character_orientation` in image|video and `mode` in 720p|1080p, each defaulting as
  documented (video, 720p) when absent; `callBackUrl` an http(s) URL when present.
  Unknown `input` keys are ignored.
- Task ids: `task_kling-2.6_<ms epoch><6 hex>` (the docs' example is the timestamp alone;
  the suffix keeps ids unique when two submits share a millisecond).
- Input limits are checked while `generating` (Kie fetches inputs asynchronously) and
  fail the task: image png/jpeg <= 10 MB, each side >= 300 px, aspect 2:5..5:2; video
  <= 100 MB, 3..30 s, <= 10 s when `character_orientation` is `image`.
- recordInfo `data` carries every documented field at all times: `resultJson` and
  `failCode`/`failMsg` are "" until they apply; `costTime` (ms spent generating),
  `completeTime` and `creditsConsumed` are null until the task ends (credits only on
  success: 11/18 credits per started output second for 720p/1080p, the community-quoted
  rates). No `progress` (documented for sora2 only).
- `failCode` (string): "501" for the `fail_task` knob (generation failed), "422" for
  unusable inputs, "500" for an internal error.
- Output: the motion video's length, frame rate and audio, scaled down to 720 / 1080
  px height for `mode` 720p / 1080p (never up).
- Callback (when `callBackUrl` is set and the `callbacks` knob is on), sent once the task
  is final: `{"code":200|501,"msg":"success"|failMsg,"taskId":...,"data":{<recordInfo
  data>,"task_id":...,"callbackType":"task_completed"}}` - `data.task_id` because the
  webhook-verification page's example and sample code use it, `data.taskId` because
  community handlers read the recordInfo shape. With an HMAC key configured, each
  attempt carries `X-Webhook-Timestamp` (unix seconds, sent time) and
  `X-Webhook-Signature` = base64(HMAC-SHA256(key, taskId + "." + timestamp)).
  Only HTTP 200 counts as delivered (the docs say "return 200"); otherwise, or after
  `callback_timeout` (15 s, as documented), retry after 0.5, 1 and 2 s, then give up
  (Kie: "after 3 consecutive retry failures"); both are knobs (`callback_timeout`,
  `callback_retry_delays`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .delivery import deliver_callback, json_headers
from .jobs import InputSpec, JobSpec, SimJob, check_upstream_limits
from .provider import Provider, SandboxContext
from .render import ImageProbe, VideoProbe
from .wire import Request, Response

MODEL = "kling-2.6/motion-control"
ORIENTATIONS = ("image", "video")
MODES = {"720p": 720, "1080p": 1080}
MAX_PROMPT = 2500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 100 * 1024 * 1024
CREDITS_PER_SECOND = {"720p": 11, "1080p": 18}
CALLBACK_RETRY_DELAYS = (0.5, 1.0, 2.0)

STATES = {
    "pending": "waiting",
    "queued": "queuing",
    "running": "generating",
    "succeeded": "success",
    "failed": "fail",
}
FAIL_CODES = {"task": "501", "input": "422", "internal": "500"}
NO_ACCESS = "You do not have access permissions"

# message and HTTP status for each simulated submit failure (fail_submit knob)
SUBMIT_FAILURES: dict[int, tuple[str, int]] = {
    401: (NO_ACCESS, 401),
    402: ("Credits insufficient", 200),
    404: ("Not found", 200),
    422: ("Validation error", 200),
    429: ("Rate limited: too many requests, please try again later", 429),
    433: ("Sub-key usage exceeds limit", 200),
    455: ("Service unavailable: system maintenance", 200),
    500: ("Server error, please try again later", 500),
    501: ("Generation failed", 200),
    505: ("Feature disabled", 200),
}


class ValidationError(Exception):
    pass


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def _envelope(code: int, msg: str, status: int = 200) -> Response:
    return Response.json({"code": code, "msg": msg}, status=status)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def signature(hmac_key: str, task_id: str, timestamp: str) -> str:
    """Kie's webhook signature: base64(HMAC-SHA256(key, taskId + "." + timestamp))."""
    digest = hmac.new(hmac_key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class KieProvider(Provider):
    name = "kie"
    default_api_key = "sandbox-kie-key"
    knob_defaults: ClassVar[dict[str, Any]] = {
        "callback_timeout": 15.0,
        "callback_retry_delays": list(CALLBACK_RETRY_DELAYS),
    }

    def __init__(self, ctx: SandboxContext, api_key: str | None = None, hmac_key: str | None = None) -> None:
        super().__init__(ctx, api_key)
        self.hmac_key = hmac_key
        self._routes = {
            ("POST", "/api/v1/jobs/createTask"): "createTask",
            ("GET", "/api/v1/jobs/recordInfo"): "recordInfo",
        }

    def credentials(self) -> dict[str, str]:
        return {"API_KEY": self.api_key, **({"WEBHOOK_HMAC_KEY": self.hmac_key} if self.hmac_key else {})}

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        return self._routes.get((req.method, req.path))

    def dispatch(self, endpoint: str, req: Request) -> Response:
        if not self._authorized(req):
            return _envelope(401, NO_ACCESS, status=401)
        if endpoint == "createTask":
            return self.create_task(req)
        return self.record_info(req)

    def not_found(self, req: Request) -> Response:
        if any(path == req.path for _, path in self._routes):
            return _envelope(405, f"Request method '{req.method}' not supported", status=405)
        return _envelope(404, "Not found", status=404)

    def _authorized(self, req: Request) -> bool:
        scheme, _, token = (req.header("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.api_key):
            return False
        return req.method != "POST" or req.media_type() == "application/json"

    # --------------------------------------------------------------- createTask

    def create_task(self, req: Request) -> Response:
        code = self.take_submit_failure()
        if code is not None:
            msg, status = SUBMIT_FAILURES.get(code, ("Simulated error", 200))
            return _envelope(code, msg, status=status)
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            return _envelope(422, "Request body is not valid JSON")
        try:
            inp = validate_create(body)
        except ValidationError as exc:
            return _envelope(422, str(exc))

        task_id = f"task_kling-2.6_{int(time.time() * 1000)}{secrets.token_hex(3)}"
        config = self.config()
        job = SimJob(
            task_id=task_id,
            provider=self.name,
            request=body,
            state_names=STATES,
            callback_url=body.get("callBackUrl"),
            config=config,
            extra={"param": json.dumps(body, separators=(",", ":"), ensure_ascii=False), "mode": inp["mode"]},
        )
        spec = JobSpec(
            image=InputSpec("input_urls[0]", inp["input_urls"][0], MAX_IMAGE_BYTES),
            video=InputSpec("video_urls[0]", inp["video_urls"][0], MAX_VIDEO_BYTES),
            output_name=f"{task_id}.mp4",
            keep_sound=True,
            max_height=MODES[inp["mode"]],
            state_seconds=config["state_seconds"],
            fail_message=config["fail_task"],
            check_inputs=lambda img, vid: check_inputs(img, vid, inp["character_orientation"]),
            on_finish=self._on_finish,
        )
        self.ctx.tasks[task_id] = job
        self.ctx.jobs.run(
            job, spec, self.ctx.files_dir(self.name), f"{self.ctx.base_url(self.name)}/files/{task_id}.mp4"
        )
        return Response.json({"code": 200, "msg": "success", "data": {"taskId": task_id}})

    # --------------------------------------------------------------- recordInfo

    def record_info(self, req: Request) -> Response:
        task_id = (req.query_one("taskId") or "").strip()
        if not task_id:
            return _envelope(400, "taskId parameter is required")
        job = self.ctx.tasks.get(task_id)
        if job is None or job.provider != self.name:
            return _envelope(404, "Task not found")
        return Response.json({"code": 200, "msg": "success", "data": record(job)})

    # --------------------------------------------------------------- callbacks

    def _on_finish(self, job: SimJob) -> None:
        if not job.callback_url or not job.config.get("callbacks", True):
            return
        data = record(job)
        ok = data["state"] == "success"
        payload = {
            "code": 200 if ok else 501,
            "msg": "success" if ok else data["failMsg"],
            "taskId": job.task_id,
            "data": {**data, "task_id": job.task_id, "callbackType": "task_completed"},
        }
        deliver_callback(
            self.ctx,
            provider=self.name,
            task_id=job.task_id,
            url=job.callback_url,
            body=json.dumps(payload, separators=(",", ":")).encode(),
            headers=lambda: self._callback_headers(job.task_id),
            timeout=job.config.get("callback_timeout", 15.0),
            retry_delays=job.config.get("callback_retry_delays", CALLBACK_RETRY_DELAYS),
        )

    def _callback_headers(self, task_id: str) -> dict[str, str]:
        if not self.hmac_key:
            return json_headers()
        ts = str(int(time.time()))
        sig = signature(self.hmac_key, task_id, ts)
        return json_headers({"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sig})


# ------------------------------------------------------------------- pure helpers


def validate_create(body: Any) -> dict[str, Any]:
    """Check a createTask body against the documented schema; returns `input` with defaults."""
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    model = body.get("model")
    if not model:
        raise ValidationError("model is required")
    if model != MODEL:
        raise ValidationError(f"model {model!r} is not supported by this endpoint")
    callback = body.get("callBackUrl")
    if callback not in (None, "") and not _is_http_url(callback):
        raise ValidationError("callBackUrl must be a valid http(s) URL")
    inp = body.get("input")
    if not isinstance(inp, dict):
        raise ValidationError("input is required and must be an object")
    for name in ("input_urls", "video_urls"):
        _check_url_array(inp.get(name), f"input.{name}")
    prompt = inp.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ValidationError("input.prompt must be a string")
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise ValidationError(f"input.prompt must be at most {MAX_PROMPT} characters")
    orientation = inp.get("character_orientation", "video")
    if orientation not in ORIENTATIONS:
        raise ValidationError("input.character_orientation must be one of: image, video")
    mode = inp.get("mode", "720p")
    if mode not in MODES:
        raise ValidationError("input.mode must be one of: 720p, 1080p")
    return {**inp, "character_orientation": orientation, "mode": mode}


def _check_url_array(value: Any, name: str) -> None:
    if value is None or value == []:
        raise ValidationError(f"{name} is required")
    if not isinstance(value, list):
        raise ValidationError(f"{name} must be an array")
    if len(value) > 1:
        raise ValidationError(f"{name} must contain at most 1 item")
    if not _is_http_url(value[0]):
        raise ValidationError(f"{name}[0] must be a valid file URL (upload the file first)")


def check_inputs(img: ImageProbe, vid: VideoProbe, orientation: str) -> None:
    """Kie's documented input limits, applied once the files are fetched."""
    check_upstream_limits(img, vid, orientation, image_field="input_urls[0]", video_field="video_urls[0]")


def record(job: SimJob) -> dict[str, Any]:
    """recordInfo's `data` for a job (a consistent snapshot)."""
    with job.lock:
        state = STATES[job.phase]
        succeeded, failed = state == "success", state == "fail"
        finished = job.finished_at is not None
        credits, result = None, ""
        if succeeded:
            result = json.dumps({"resultUrls": [job.output_url]}, separators=(",", ":"))
        if succeeded and job.media:
            credits = math.ceil(job.media["duration"] - 1e-6) * CREDITS_PER_SECOND[job.extra["mode"]]
        return {
            "taskId": job.task_id,
            "model": job.request.get("model", MODEL),
            "state": state,
            "param": job.extra["param"],
            "resultJson": result,
            "failCode": FAIL_CODES.get(job.fail_kind, "500") if failed else "",
            "failMsg": job.fail_message if failed else "",
            "costTime": _ms(job.finished_at - (job.started_at or job.finished_at)) if finished else None,
            "completeTime": _ms(job.finished_at),
            "createTime": _ms(job.created_at),
            "updateTime": _ms(job.updated_at),
            "creditsConsumed": credits,
        }
