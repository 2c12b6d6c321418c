"""Replicate predictions simulator for `kwaivgi/kling-v2.6-motion-control`
(docs/providers.md section 6.3).

Written from Replicate's predictions, webhooks and deadline docs only. Mounted at
`{root}/replicate`, so `base_url("replicate")` plays the role of `https://api.replicate.com`:

- `POST /v1/models/kwaivgi/kling-v2.6-motion-control/predictions` `{input, webhook?,
  webhook_events_filter?}` (+ `Cancel-After`) -> 201 the prediction
- `GET  /v1/predictions/{id}` -> the prediction
- `POST /v1/predictions/{id}/cancel` -> the prediction (status `canceled` when it took)
- `GET  /v1/webhooks/default/secret` -> `{"key": "whsec_<base64>"}`

The prediction: `{id, model, version, input, logs, output, data_removed, error, status,
created_at, started_at, completed_at, urls{get, cancel}, metrics{predict_time?}}`.

Choices where the docs are silent or ambiguous:

- Auth: `Authorization: Bearer <token>` (also `Token <token>`, the older scheme); anything else
  answers 401 `{"title": "Unauthenticated", "detail": "You did not pass a valid authentication
  token", "status": 401}`. Errors are `{"title", "detail", "status"}` (problem details).
- `fail_submit` knob: that status with `{"title": "Simulated error", "detail": ..., "status"}`;
  429's detail is the documented "Request was throttled...".
- Validation (422, with `invalid_fields`): `input.image`, `input.video` http(s) URLs, `mode`
  std|pro (default std), `character_orientation` image|video (default image), `prompt` a string,
  `keep_original_sound` a boolean (default true); `webhook` an http(s) URL;
  `webhook_events_filter` a subset of start/output/logs/completed (default all four).
- Statuses: pending and queued are `starting`, running is `processing` (its `logs` carry a tqdm
  style percentage), then `succeeded` / `failed` / `canceled` / `aborted`. `Cancel-After`
  (`30s`, `5m`, `1h30m`, or plain seconds) ends a prediction still starting as `aborted` and a
  processing one as `canceled` when it passes; an explicit cancel does the same at once.
- `output` is the video URL (a string); `metrics.predict_time` the seconds spent processing.
  Outputs are not deleted after an hour here (the gateway copies them at once anyway).
- Webhooks: the prediction, POSTed on `start` (when processing begins) and `completed` (once
  final) when those are in the filter (`output`/`logs` events are not simulated). Signed per
  Standard Webhooks with this sandbox's own secret: `webhook-id` (`msg_...`, one per event,
  the same on retries), `webhook-timestamp` (unix seconds, fresh per attempt),
  `webhook-signature: v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>`. Any 2xx is
  delivered; only `completed` is retried (after 0.5, 1 and 2 s: `callback_retry_delays`), as
  Replicate retries only terminal webhooks. `rotate_key()` starts signing with a new secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .delivery import deliver_callback, json_headers
from .jobs import InputSpec, JobSpec, SimJob, check_upstream_limits
from .provider import Provider, SandboxContext
from .wire import Request, Response

MODEL = "kwaivgi/kling-v2.6-motion-control"
CREATE_PATH = f"/v1/models/{MODEL}/predictions"
SECRET_PATH = "/v1/webhooks/default/secret"  # noqa: S105 - a path, not a password
EVENTS = ("start", "output", "logs", "completed")
HEIGHTS = {"std": 720, "pro": 1080}
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 100 * 1024 * 1024
CALLBACK_RETRY_DELAYS = (0.5, 1.0, 2.0)
STATUSES = {"pending": "starting", "queued": "starting", "running": "processing",
            "succeeded": "succeeded", "failed": "failed"}
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class ValidationError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    return Response.json({"title": title, "detail": detail, "status": status, **extra}, status=status)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_duration(value: str) -> float | None:
    """`Cancel-After`: `30s`, `5m`, `1h30m` or plain seconds; None when unreadable."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    match = _DURATION.match(value)
    if not value or not match:
        return None
    hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + secs)


def signature(secret: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks: v1,base64(HMAC-SHA256(secret, id "." timestamp "." body))."""
    mac = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class ReplicateProvider(Provider):
    name = "replicate"
    default_api_key = "sandbox-replicate-key"
    knob_defaults: ClassVar[dict[str, Any]] = {"callback_retry_delays": list(CALLBACK_RETRY_DELAYS)}

    def __init__(self, ctx: SandboxContext, api_key: str | None = None) -> None:
        super().__init__(ctx, api_key)
        self._secret = secrets.token_bytes(24)
        self._secret_lock = threading.Lock()

    def rotate_key(self, *, keep_old: bool = False) -> None:  # noqa: ARG002 - one secret per account
        with self._secret_lock:
            self._secret = secrets.token_bytes(24)

    def webhook_secret(self) -> str:
        with self._secret_lock:
            return "whsec_" + base64.b64encode(self._secret).decode()

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        if req.method == "POST" and req.path == CREATE_PATH:
            return "create"
        if req.method == "GET" and req.path == SECRET_PATH:
            return "secret"
        parts = req.path.split("/")  # "", v1, predictions, id[, cancel]
        if len(parts) == 4 and parts[1:3] == ["v1", "predictions"] and req.method == "GET":
            return "get"
        if len(parts) == 5 and parts[1:3] == ["v1", "predictions"] and parts[4] == "cancel" \
                and req.method == "POST":
            return "cancel"
        return None

    def dispatch(self, endpoint: str, req: Request) -> Response:
        if not self._authorized(req):
            return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        if endpoint == "create":
            return self.create(req)
        if endpoint == "secret":
            return Response.json({"key": self.webhook_secret()})
        job = self.ctx.tasks.get(req.path.split("/")[3])
        if job is None or job.provider != self.name:
            return _problem(404, "Not found", "Not found.")
        if endpoint == "cancel":
            if job.request_cancel(running_too=True):
                job.extra["cancel_reason"] = "canceled"
        return Response.json(self.prediction(job))

    def not_found(self, req: Request) -> Response:
        return _problem(404, "Not found", "Not found.")

    def _authorized(self, req: Request) -> bool:
        scheme, _, token = (req.header("Authorization") or "").strip().partition(" ")
        return scheme in ("Bearer", "Token") and hmac.compare_digest(token.strip(), self.api_key)

    # --------------------------------------------------------------- create

    def create(self, req: Request) -> Response:
        code = self.take_submit_failure()
        if code is not None:
            detail = "Request was throttled. Expected available in 1 second." if code == 429 else "Simulated"
            return _problem(code if 400 <= code <= 599 else 500, "Simulated error", detail)
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "Bad request", "The request body is not valid JSON")
        try:
            inp, webhook, events = validate_create(body)
        except ValidationError as exc:
            return _problem(422, "Input validation failed", str(exc),
                            invalid_fields=[{"type": "invalid", "field": exc.field, "description": str(exc)}])
        deadline = req.header("Cancel-After")
        cancel_after = parse_duration(deadline) if deadline else None
        if deadline and cancel_after is None:
            return _problem(400, "Bad request", "Cancel-After must be a duration such as 30s, 5m or 1h30m")
        task_id = secrets.token_hex(13)[:26]
        config = self.config()
        job = SimJob(task_id=task_id, provider=self.name, request=inp, state_names=STATUSES,
                     callback_url=webhook, config=config, extra={"events": events, "cancel_reason": ""})
        orientation = inp["character_orientation"]
        spec = JobSpec(
            image=InputSpec("input.image", inp["image"], MAX_IMAGE_BYTES),
            video=InputSpec("input.video", inp["video"], MAX_VIDEO_BYTES),
            output_name=f"{task_id}.mp4",
            keep_sound=inp["keep_original_sound"],
            max_height=HEIGHTS[inp["mode"]],
            state_seconds=config["state_seconds"],
            fail_message=config["fail_task"],
            check_inputs=lambda img, vid: check_upstream_limits(
                img, vid, orientation, image_field="input.image", video_field="input.video"),
            on_finish=lambda j: self._webhook(j, "completed"),
            on_phase=lambda j: self._webhook(j, "start") if j.phase == "running" else None,
        )
        self.ctx.tasks[task_id] = job
        if cancel_after is not None:
            timer = threading.Timer(cancel_after, self._deadline, args=(job,))
            timer.daemon = True
            timer.start()
        self.ctx.jobs.run(job, spec, self.ctx.files_dir(self.name),
                          f"{self.ctx.base_url(self.name)}/files/{task_id}.mp4")
        return Response.json(self.prediction(job), status=201)

    def _deadline(self, job: SimJob) -> None:
        started = job.phase == "running"
        if job.request_cancel(running_too=True):
            job.extra["cancel_reason"] = "canceled" if started else "aborted"

    # --------------------------------------------------------------- the prediction

    def prediction(self, job: SimJob) -> dict[str, Any]:
        with job.lock:
            phase, kind, message = job.phase, job.fail_kind, job.fail_message
            started, finished = job.started_at, job.finished_at
            reason = job.extra.get("cancel_reason") or ""
            status = STATUSES[phase]
            if kind == "canceled" or (reason and job.cancel_requested and phase not in ("succeeded",)):
                status = reason or "canceled"
            base = f"{self.ctx.base_url(self.name)}/v1/predictions/{job.task_id}"
            out: dict[str, Any] = {
                "id": job.task_id, "model": MODEL, "version": "hidden", "input": job.request,
                "logs": _logs(job, phase), "output": None, "data_removed": False, "error": None,
                "status": status, "created_at": _iso(job.created_at), "started_at": _iso(started),
                "completed_at": _iso(finished), "urls": {"get": base, "cancel": f"{base}/cancel"},
                "metrics": {},
            }
            if status == "succeeded":
                out["output"] = job.output_url
            elif status == "failed":
                out["error"] = message or "internal error"
            if finished is not None and started is not None and status != "aborted":
                out["metrics"] = {"predict_time": round(finished - started, 3)}
            return out

    # --------------------------------------------------------------- webhooks

    def _webhook(self, job: SimJob, event: str) -> None:
        if not job.callback_url or not job.config.get("callbacks", True) or event not in job.extra["events"]:
            return
        body = json.dumps(self.prediction(job), separators=(",", ":")).encode()
        msg_id = "msg_" + secrets.token_hex(12)
        kwargs = dict(provider=self.name, task_id=job.task_id, url=job.callback_url, body=body,
                      headers=lambda: self._headers(msg_id, body),
                      timeout=job.config.get("callback_timeout", 15.0),
                      accepted=lambda status: 200 <= status < 300)
        if event == "completed":
            delays = job.config.get("callback_retry_delays", CALLBACK_RETRY_DELAYS)
            deliver_callback(self.ctx, retry_delays=delays, **kwargs)
        else:  # intermediate events are sent once and never hold the prediction up
            threading.Thread(target=deliver_callback, args=(self.ctx,), kwargs={**kwargs, "retry_delays": []},
                             daemon=True).start()

    def _headers(self, msg_id: str, body: bytes) -> dict[str, str]:
        ts = str(int(time.time()))
        with self._secret_lock:
            secret = self._secret
        return json_headers({"webhook-id": msg_id, "webhook-timestamp": ts,
                             "webhook-signature": signature(secret, msg_id, ts, body)})


# ------------------------------------------------------------------- pure helpers


def _logs(job: SimJob, phase: str) -> str:
    if phase == "pending" or phase == "queued":
        return ""
    planned = float(job.config.get("state_seconds", 0.5)) or 0.5
    spent = time.time() - (job.started_at or time.time())
    percent = 100 if phase in ("succeeded", "failed") else min(99, int(100 * spent / planned))
    return f"Starting generation\n{percent:3d}%|{'#' * (percent // 10)}"


def validate_create(body: Any) -> tuple[dict[str, Any], str | None, tuple[str, ...]]:
    if not isinstance(body, dict):
        raise ValidationError("", "body must be a JSON object")
    inp = body.get("input")
    if not isinstance(inp, dict):
        raise ValidationError("input", "input is required")
    for name in ("image", "video"):
        if not _is_http_url(inp.get(name)):
            raise ValidationError(f"input.{name}", f"{name}: Does not match format 'uri'")
    mode = inp.get("mode", "std")
    if mode not in HEIGHTS:
        raise ValidationError("input.mode", "mode must be one of the following: \"std\", \"pro\"")
    orientation = inp.get("character_orientation", "image")
    if orientation not in ("image", "video"):
        raise ValidationError("input.character_orientation",
                              "character_orientation must be one of the following: \"image\", \"video\"")
    if "prompt" in inp and not isinstance(inp["prompt"], str):
        raise ValidationError("input.prompt", "prompt: Invalid type. Expected: string")
    keep = inp.get("keep_original_sound", True)
    if not isinstance(keep, bool):
        raise ValidationError("input.keep_original_sound",
                              "keep_original_sound: Invalid type. Expected: boolean")
    webhook = body.get("webhook")
    if webhook is not None and not _is_http_url(webhook):
        raise ValidationError("webhook", "webhook must be an http(s) URL")
    events = body.get("webhook_events_filter", list(EVENTS))
    if not isinstance(events, list) or not all(e in EVENTS for e in events):
        raise ValidationError("webhook_events_filter", f"each event must be one of {', '.join(EVENTS)}")
    return ({**inp, "mode": mode, "character_orientation": orientation, "keep_original_sound": keep},
            webhook, tuple(events))
