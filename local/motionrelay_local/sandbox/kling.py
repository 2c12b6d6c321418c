"""Official Kling AI API simulator for motion control (docs/providers.md section 6.1).

Written from Kling's API docs (and the mirrors the reference cites) only. Mounted at
`{root}/kling`, so `base_url("kling")` plays the role of `https://api-singapore.klingai.com`:

- `POST /v1/videos/motion-control` -> `{code: 0, message, request_id, data{task_id, task_status,
  task_info{external_task_id}, created_at, updated_at}}`
- `GET  /v1/videos/motion-control/{id}` -> the same envelope with the task: `task_status`
  submitted | processing | succeed | failed, `task_status_msg`, `task_result{videos[]{id, url,
  duration}}`, `final_unit_deduction`; `{id}` is the task_id or the caller's external_task_id
  ("choose one between task_id and external_task_id").

Choices where the docs are silent or ambiguous:

- Auth: `Authorization: Bearer <JWT>`, HS256, `iss` = this sandbox's access key, signed with
  its secret key, `exp` and `nbf` checked against the clock (5 s leeway for clock skew, as the
  docs' own `nbf: now - 5` suggests). Refusals answer HTTP 401 with the documented codes: 1001
  no token, 1002 malformed / wrong signature / unknown issuer / other algorithm, 1003 not yet
  valid, 1004 expired.
- Errors are `{code, message, request_id}` with the HTTP status of the code table: 1201 (400)
  for invalid parameters, 1203 (404) for an unknown task. `fail_submit` maps 401 -> 1000,
  402 -> 1102 (HTTP 429, as the table has it), 429 -> 1302, 500 -> 5000, 503 -> 5001, any
  other code -> that HTTP status with code 5000 (>= 500) or 1200.
- Validation: `model_name` kling-v2-6 (or kling-v3), `image_url` and `video_url` http(s) URLs
  (raw base64 images are documented but not simulated: 1201), `character_orientation`
  image|video and `mode` std|pro required, `keep_original_sound` "yes"|"no" (default yes),
  `prompt` a string <= 2500, `callback_url` an http(s) URL, `external_task_id` a string unique
  per account (a second task with the same one is 1201 "external_task_id already exists").
- Task ids are 18-digit numeric strings, like the docs' examples; times are ms epochs.
- `final_unit_deduction` (a numeric string) on success: 1 unit per started output second for
  std, 1.6 for pro (the sandbox's own rate; Kling's is not public).
- Callbacks (when `callback_url` was given and the `callbacks` knob is on): the task object
  (the query's `data`), POSTed unsigned on every status change: `processing` when rendering
  starts (once, not retried), then the final status (retried after 0.5, 1, 2 s:
  `callback_retry_delays`); any 2xx is delivered.
- Output: std at most 720 px high, pro 1080 px; the reference audio unless "no".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .delivery import deliver_callback, json_headers
from .jobs import InputSpec, JobSpec, SimJob, check_upstream_limits
from .provider import Provider, SandboxContext
from .wire import Request, Response

PATH = "/v1/videos/motion-control"
MODELS = ("kling-v2-6", "kling-v3")
HEIGHTS = {"std": 720, "pro": 1080}
UNITS_PER_SECOND = {"std": 1.0, "pro": 1.6}
MAX_PROMPT = 2500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 100 * 1024 * 1024
LEEWAY = 5
CALLBACK_RETRY_DELAYS = (0.5, 1.0, 2.0)
STATES = {"pending": "submitted", "queued": "submitted", "running": "processing",
          "succeeded": "succeed", "failed": "failed"}
SUBMIT_FAILURES = {401: (1000, 401), 402: (1102, 429), 429: (1302, 429), 500: (5000, 500), 503: (5001, 503)}


class ValidationError(Exception):
    pass


def _error(code: int, message: str, status: int) -> Response:
    body = {"code": code, "message": message, "request_id": secrets.token_hex(8)}
    return Response.json(body, status=status)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_jwt(token: str, access_key: str, secret_key: str, now: float) -> int | None:
    """None when the token is valid, else the documented refusal code (1002/1003/1004)."""
    parts = token.split(".")
    if len(parts) != 3:
        return 1002
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
        signature = _unb64url(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return 1002
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return 1002
    expected = hmac.new(secret_key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature) or claims.get("iss") != access_key:
        return 1002
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or now > exp + LEEWAY:
        return 1004
    if isinstance(nbf, int | float) and now + LEEWAY < nbf:
        return 1003
    return None


class KlingProvider(Provider):
    """`api_key` is the secret key; the access key is `access_key` (a fixed sandbox one)."""

    name = "kling"
    default_api_key = "sandbox-kling-secret-key"
    access_key = "sandbox-kling-access-key"
    knob_defaults: ClassVar[dict[str, Any]] = {"callback_retry_delays": list(CALLBACK_RETRY_DELAYS)}

    def __init__(self, ctx: SandboxContext, api_key: str | None = None) -> None:
        super().__init__(ctx, api_key)
        self._external: dict[str, str] = {}  # external_task_id -> task_id
        self._external_lock = threading.Lock()

    def credentials(self) -> dict[str, str]:
        return {"ACCESS_KEY": self.access_key, "SECRET_KEY": self.api_key}

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        if req.path == PATH and req.method == "POST":
            return "create"
        if req.path.startswith(PATH + "/") and req.method == "GET" and "/" not in req.path[len(PATH) + 1:]:
            return "query"
        return None

    def dispatch(self, endpoint: str, req: Request) -> Response:
        refusal = self._refusal(req)
        if refusal is not None:
            return _error(refusal, {1001: "Authorization is empty", 1002: "Authorization is invalid",
                                    1003: "Authorization is not yet valid",
                                    1004: "Authorization has expired"}[refusal], 401)
        if endpoint == "create":
            return self.create(req)
        job = self._find(req.path[len(PATH) + 1:])
        if job is None:
            return _error(1203, "task not found", 404)
        return self._ok(task_object(job))

    def not_found(self, req: Request) -> Response:
        return _error(1202, "Invalid request method or path", 404)

    def _refusal(self, req: Request) -> int | None:
        scheme, _, token = (req.header("Authorization") or "").strip().partition(" ")
        if not token.strip():
            return 1001
        if scheme != "Bearer":
            return 1002
        return check_jwt(token.strip(), self.access_key, self.api_key, time.time())

    def _find(self, key: str) -> SimJob | None:
        with self._external_lock:
            key = self._external.get(key, key)
        job = self.ctx.tasks.get(key)
        return job if job is not None and job.provider == self.name else None

    @staticmethod
    def _ok(data: dict[str, Any]) -> Response:
        return Response.json({"code": 0, "message": "SUCCEED", "request_id": secrets.token_hex(8),
                              "data": data})

    # --------------------------------------------------------------- create

    def create(self, req: Request) -> Response:
        failure = self.take_submit_failure()
        if failure is not None:
            code, status = SUBMIT_FAILURES.get(failure, (5000 if failure >= 500 else 1200, failure))
            return _error(code, f"Simulated error {failure}", status if 400 <= status <= 599 else 500)
        try:
            body = validate_create(req.json())
        except (ValueError, UnicodeDecodeError):
            return _error(1201, "Request body is not valid JSON", 400)
        except ValidationError as exc:
            return _error(1201, str(exc), 400)
        task_id = f"{int(time.time() * 1000) % 10**13:013d}{secrets.randbelow(10**5):05d}"
        external = body.get("external_task_id")
        with self._external_lock:
            if external is not None and external in self._external:
                return _error(1201, "external_task_id already exists", 400)
            if external is not None:
                self._external[external] = task_id
        config = self.config()
        job = SimJob(task_id=task_id, provider=self.name, request=body, state_names=STATES,
                     callback_url=body.get("callback_url"), config=config)
        orientation = body["character_orientation"]
        spec = JobSpec(
            image=InputSpec("image_url", body["image_url"], MAX_IMAGE_BYTES),
            video=InputSpec("video_url", body["video_url"], MAX_VIDEO_BYTES),
            output_name=f"{task_id}.mp4",
            keep_sound=body["keep_original_sound"] == "yes",
            max_height=HEIGHTS[body["mode"]],
            state_seconds=config["state_seconds"],
            fail_message=config["fail_task"],
            check_inputs=lambda img, vid: check_upstream_limits(
                img, vid, orientation, image_field="image_url", video_field="video_url", min_side=340),
            on_finish=lambda j: self._callback(j, final=True),
            on_phase=lambda j: self._callback(j, final=False) if j.phase == "running" else None,
        )
        self.ctx.tasks[task_id] = job
        self.ctx.jobs.run(job, spec, self.ctx.files_dir(self.name),
                          f"{self.ctx.base_url(self.name)}/files/{task_id}.mp4")
        return self._ok(task_object(job))

    # --------------------------------------------------------------- callbacks

    def _callback(self, job: SimJob, *, final: bool) -> None:
        if not job.callback_url or not job.config.get("callbacks", True):
            return
        body = json.dumps(task_object(job), separators=(",", ":")).encode()
        kwargs = dict(provider=self.name, task_id=job.task_id, url=job.callback_url, body=body,
                      headers=json_headers, timeout=job.config.get("callback_timeout", 15.0),
                      accepted=lambda status: 200 <= status < 300)
        if final:
            delays = job.config.get("callback_retry_delays", CALLBACK_RETRY_DELAYS)
            deliver_callback(self.ctx, retry_delays=delays, **kwargs)
        else:
            threading.Thread(target=deliver_callback, args=(self.ctx,),
                             kwargs={**kwargs, "retry_delays": []}, daemon=True).start()


# ------------------------------------------------------------------- pure helpers


def validate_create(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    model = body.get("model_name", MODELS[0])
    if model not in MODELS:
        raise ValidationError(f"model_name {model!r} is not supported")
    for name in ("image_url", "video_url"):
        if not body.get(name):
            raise ValidationError(f"{name} is required")
        if not _is_http_url(body[name]):
            raise ValidationError(f"{name} must be a URL")
    if body.get("character_orientation") not in ("image", "video"):
        raise ValidationError("character_orientation must be one of: image, video")
    if body.get("mode") not in HEIGHTS:
        raise ValidationError("mode must be one of: std, pro")
    keep = body.get("keep_original_sound", "yes")
    if keep not in ("yes", "no"):
        raise ValidationError("keep_original_sound must be one of: yes, no")
    prompt = body.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT):
        raise ValidationError(f"prompt must be a string of at most {MAX_PROMPT} characters")
    callback = body.get("callback_url")
    if callback not in (None, "") and not _is_http_url(callback):
        raise ValidationError("callback_url must be a URL")
    external = body.get("external_task_id")
    if external is not None and (not isinstance(external, str) or not external):
        raise ValidationError("external_task_id must be a non-empty string")
    return {**body, "model_name": model, "keep_original_sound": keep}


def task_object(job: SimJob) -> dict[str, Any]:
    """The task as the query answers it (and as callbacks carry it)."""
    with job.lock:
        state = job.state
        out: dict[str, Any] = {
            "task_id": job.task_id,
            "task_status": state,
            "task_status_msg": job.fail_message if state == "failed" else "",
            "task_info": {"external_task_id": job.request.get("external_task_id")},
            "created_at": int(job.created_at * 1000),
            "updated_at": int(job.updated_at * 1000),
        }
        if state == "succeed" and job.media:
            duration = float(job.media.get("duration") or 0)
            out["task_result"] = {"videos": [{"id": f"v{job.task_id}", "url": job.output_url,
                                              "duration": f"{duration:.1f}"}]}
            units = math.ceil(duration - 1e-6) * UNITS_PER_SECOND[job.request["mode"]]
            out["final_unit_deduction"] = f"{units:g}"
        return out
