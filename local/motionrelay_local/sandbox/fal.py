"""fal.ai queue simulator for `fal-ai/kling-video/v2.6/{standard,pro}/motion-control`
(docs/providers.md section 6.2).

Written from fal's queue, webhook and model docs only. Mounted at `{root}/fal`, so
`base_url("fal")` plays the role of `https://queue.fal.run`, and `{root}/fal/.well-known/jwks.json`
the role of `https://rest.alpha.fal.ai/.well-known/jwks.json`:

- `POST /fal-ai/kling-video/v2.6/{standard|pro}/motion-control[?fal_webhook=<url>]`
  -> `{request_id, response_url, status_url, cancel_url, gateway_request_id}`
- `GET  /fal-ai/kling-video/requests/{id}/status` -> `{status, request_id, response_url,
  queue_position (IN_QUEUE only)}`
- `GET  /fal-ai/kling-video/requests/{id}` -> the result `{video{url, content_type, file_name,
  file_size}}`
- `PUT  /fal-ai/kling-video/requests/{id}/cancel` -> 202 `{"status":"CANCELLATION_REQUESTED"}`
  while queued, else 400 `{"status":"ALREADY_COMPLETED"}`
- `GET  /.well-known/jwks.json` -> `{"keys":[{kty: OKP, crv: Ed25519, x, kid, use: sig}]}` (no auth)

Choices where the docs are silent or ambiguous:

- Auth: `Authorization: Key <key>`; anything else answers 401 `{"detail": "..."}` (fal's errors
  are FastAPI's `{"detail": ...}`). The JWKS needs no key, like fal's.
- `fail_submit` knob: that HTTP status with `{"detail": "Simulated error <code>"}`.
- Validation (422, FastAPI's list form `{"detail": [{loc, msg, type}]}`): `image_url`, `video_url`
  http(s) URLs, `character_orientation` image|video (required), `prompt` a string <= 2500,
  `keep_original_sound` a boolean (default true). Unknown fields are ignored, as pydantic does.
- Status: the simulator's pending and queued phases are IN_QUEUE; `queue_position` counts this
  sandbox's fal requests still queued ahead of this one (0 when first). running is IN_PROGRESS;
  succeeded and failed are COMPLETED.
- The result of an unfinished request is 400 `{"detail": "Request is still in progress"}`; of a
  failed one (`fail_task` knob, unusable inputs) 422 `{"detail": [{"loc": ["body"], "msg": <why>,
  "type": "generation_error"}]}`; of a canceled one 400 `{"detail": "Request was cancelled"}`;
  unknown ids 404 `{"detail": "Request not found"}`.
- Output: `std` renders at most 720 px high, `pro` 1080 px.
- Webhook (when `fal_webhook` was given and the `callbacks` knob is on), once the request is
  final (not for a canceled one): `{request_id, gateway_request_id, status: "OK"|"ERROR",
  payload: <result>|null, error: <why>|null}`, signed with this sandbox's own Ed25519 key:
  `X-Fal-Webhook-Request-Id`, `-User-Id` ("sandbox-user"), `-Timestamp` (unix seconds, fresh per
  attempt), `-Signature` = hex(Ed25519(request_id \\n user_id \\n timestamp \\n
  hex(sha256(body)))). Any 2xx is delivered; fal retries 10 times over 2 hours, the sandbox after
  0.5, 1 and 2 s (`callback_retry_delays`). `rotate_key()` starts signing with a new key (the
  JWKS then lists the new one first, and the old one unless `keep_old=False`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from typing import Any, ClassVar
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .delivery import deliver_callback, json_headers
from .jobs import InputSpec, JobSpec, SimJob, check_upstream_limits
from .provider import Provider, SandboxContext
from .render import ImageProbe, VideoProbe
from .wire import Request, Response

APP = "/fal-ai/kling-video"
MODELS = {f"{APP}/v2.6/standard/motion-control": 720, f"{APP}/v2.6/pro/motion-control": 1080}
JWKS_PATH = "/.well-known/jwks.json"
USER_ID = "sandbox-user"
MAX_PROMPT = 2500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 100 * 1024 * 1024
CALLBACK_RETRY_DELAYS = (0.5, 1.0, 2.0)
STATES = {"pending": "IN_QUEUE", "queued": "IN_QUEUE", "running": "IN_PROGRESS",
          "succeeded": "COMPLETED", "failed": "COMPLETED"}


class ValidationError(Exception):
    def __init__(self, loc: str, msg: str) -> None:
        super().__init__(msg)
        self.loc, self.msg = loc, msg


def _detail(status: int, detail: Any) -> Response:
    return Response.json({"detail": detail}, status=status)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What fal signs: request id, user id, timestamp and the body's sha256 (hex), one a line."""
    return "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())).encode()


class FalProvider(Provider):
    name = "fal"
    default_api_key = "sandbox-fal-key"
    knob_defaults: ClassVar[dict[str, Any]] = {"callback_retry_delays": list(CALLBACK_RETRY_DELAYS)}

    def __init__(self, ctx: SandboxContext, api_key: str | None = None) -> None:
        super().__init__(ctx, api_key)
        self._keys: list[tuple[str, Ed25519PrivateKey]] = []
        self._keys_lock = threading.Lock()
        self.rotate_key()

    def credentials(self) -> dict[str, str]:
        return {"API_KEY": self.api_key, "JWKS_URL": self.ctx.base_url(self.name) + JWKS_PATH}

    # --------------------------------------------------------------- keys

    def rotate_key(self, *, keep_old: bool = True) -> None:
        with self._keys_lock:
            fresh = (secrets.token_hex(4), Ed25519PrivateKey.generate())
            self._keys = [fresh, *(self._keys if keep_old else [])]

    def jwks(self) -> dict[str, Any]:
        with self._keys_lock:
            keys = list(self._keys)
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": kid,
                          "x": _b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))}
                         for kid, key in keys]}

    def sign(self, request_id: str, timestamp: str, body: bytes) -> str:
        with self._keys_lock:
            key = self._keys[0][1]
        return key.sign(signed_message(request_id, USER_ID, timestamp, body)).hex()

    # --------------------------------------------------------------- routing

    def route(self, req: Request) -> str | None:
        if req.method == "GET" and req.path == JWKS_PATH:
            return "jwks"
        if req.method == "POST" and req.path in MODELS:
            return "submit"
        prefix = f"{APP}/requests/"
        if not req.path.startswith(prefix):
            return None
        rest = req.path[len(prefix):].split("/")
        if len(rest) == 1 and req.method == "GET":
            return "result"
        if len(rest) == 2 and rest[1] == "status" and req.method == "GET":
            return "status"
        if len(rest) == 2 and rest[1] == "cancel" and req.method == "PUT":
            return "cancel"
        return None

    def dispatch(self, endpoint: str, req: Request) -> Response:
        if endpoint == "jwks":
            return Response.json(self.jwks())
        if not self._authorized(req):
            return _detail(401, "Invalid or missing credentials: use 'Authorization: Key <FAL_KEY>'")
        if endpoint == "submit":
            return self.submit(req)
        request_id = req.path[len(f"{APP}/requests/"):].split("/")[0]
        job = self.ctx.tasks.get(request_id)
        if job is None or job.provider != self.name:
            return _detail(404, "Request not found")
        if endpoint == "status":
            return Response.json(self.status(job))
        if endpoint == "cancel":
            if job.request_cancel():
                return Response.json({"status": "CANCELLATION_REQUESTED"}, status=202)
            return Response.json({"status": "ALREADY_COMPLETED"}, status=400)
        return self.result(job)

    def not_found(self, req: Request) -> Response:
        return _detail(404, "Not Found")

    def _authorized(self, req: Request) -> bool:
        scheme, _, token = (req.header("Authorization") or "").strip().partition(" ")
        return scheme == "Key" and hmac.compare_digest(token.strip(), self.api_key)

    # --------------------------------------------------------------- submit

    def submit(self, req: Request) -> Response:
        code = self.take_submit_failure()
        if code is not None:
            return _detail(code if 400 <= code <= 599 else 500, f"Simulated error {code}")
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            return _detail(422, [{"loc": ["body"], "msg": "Input should be a valid JSON object",
                                  "type": "json_invalid"}])
        try:
            inp = validate_submit(body)
        except ValidationError as exc:
            return _detail(422, [{"loc": ["body", exc.loc], "msg": exc.msg, "type": "value_error"}])
        webhook = req.query_one("fal_webhook")
        if webhook is not None and not _is_http_url(webhook):
            return _detail(422, [{"loc": ["query", "fal_webhook"], "msg": "Invalid URL",
                                  "type": "url_parsing"}])
        request_id = str(uuid.uuid4())
        config = self.config()
        job = SimJob(task_id=request_id, provider=self.name, request=inp, state_names=STATES,
                     callback_url=webhook, config=config, extra={"gateway_request_id": str(uuid.uuid4())})
        orientation = inp["character_orientation"]
        spec = JobSpec(
            image=InputSpec("image_url", inp["image_url"], MAX_IMAGE_BYTES),
            video=InputSpec("video_url", inp["video_url"], MAX_VIDEO_BYTES),
            output_name=f"{request_id}.mp4",
            keep_sound=inp["keep_original_sound"],
            max_height=MODELS[req.path],
            state_seconds=config["state_seconds"],
            fail_message=config["fail_task"],
            check_inputs=lambda img, vid: check_inputs(img, vid, orientation),
            on_finish=self._on_finish,
        )
        self.ctx.tasks[request_id] = job
        self.ctx.jobs.run(job, spec, self.ctx.files_dir(self.name),
                          f"{self.ctx.base_url(self.name)}/files/{request_id}.mp4")
        base = f"{self.ctx.base_url(self.name)}{APP}/requests/{request_id}"
        return Response.json({"request_id": request_id, "gateway_request_id": job.extra["gateway_request_id"],
                              "response_url": base, "status_url": f"{base}/status",
                              "cancel_url": f"{base}/cancel"})

    # --------------------------------------------------------------- status and result

    def status(self, job: SimJob) -> dict[str, Any]:
        base = f"{self.ctx.base_url(self.name)}{APP}/requests/{job.task_id}"
        with job.lock:
            state, created = job.state, job.created_at
        out: dict[str, Any] = {"status": state, "request_id": job.task_id, "response_url": base}
        if state == "IN_QUEUE":
            out["queue_position"] = sum(
                1 for other in list(self.ctx.tasks.values())
                if other.provider == self.name and other is not job and other.created_at < created
                and other.phase in ("pending", "queued"))
        return out

    def result(self, job: SimJob) -> Response:
        with job.lock:
            phase, kind, message = job.phase, job.fail_kind, job.fail_message
        if phase not in ("succeeded", "failed"):
            return _detail(400, "Request is still in progress")
        if phase == "failed" and kind == "canceled":
            return _detail(400, "Request was cancelled")
        if phase == "failed":
            return _detail(422, [{"loc": ["body"], "msg": message or "internal error",
                                  "type": "generation_error"}])
        return Response.json(self.payload(job))

    def payload(self, job: SimJob) -> dict[str, Any]:
        size = job.output_path.stat().st_size if job.output_path and job.output_path.exists() else None
        return {"video": {"url": job.output_url, "content_type": "video/mp4",
                          "file_name": f"{job.task_id}.mp4", "file_size": size}}

    # --------------------------------------------------------------- webhook

    def _on_finish(self, job: SimJob) -> None:
        if not job.callback_url or not job.config.get("callbacks", True) or job.fail_kind == "canceled":
            return
        ok = job.phase == "succeeded"
        body = json.dumps({
            "request_id": job.task_id,
            "gateway_request_id": job.extra["gateway_request_id"],
            "status": "OK" if ok else "ERROR",
            "payload": self.payload(job) if ok else None,
            "error": None if ok else (job.fail_message or "internal error"),
        }, separators=(",", ":")).encode()
        deliver_callback(
            self.ctx, provider=self.name, task_id=job.task_id, url=job.callback_url, body=body,
            headers=lambda: self._headers(job.task_id, body),
            timeout=job.config.get("callback_timeout", 15.0),
            retry_delays=job.config.get("callback_retry_delays", CALLBACK_RETRY_DELAYS),
            accepted=lambda status: 200 <= status < 300,
        )

    def _headers(self, request_id: str, body: bytes) -> dict[str, str]:
        ts = str(int(time.time()))
        return json_headers({"X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": USER_ID,
                             "X-Fal-Webhook-Timestamp": ts,
                             "X-Fal-Webhook-Signature": self.sign(request_id, ts, body)})


# ------------------------------------------------------------------- pure helpers


def validate_submit(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("", "Input should be a valid dictionary")
    for name in ("image_url", "video_url"):
        if body.get(name) in (None, ""):
            raise ValidationError(name, "Field required")
        if not _is_http_url(body[name]):
            raise ValidationError(name, "Input should be a valid URL")
    if body.get("character_orientation") not in ("image", "video"):
        raise ValidationError("character_orientation", "Input should be 'image' or 'video'")
    prompt = body.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT):
        raise ValidationError("prompt", f"Input should be a string of at most {MAX_PROMPT} characters")
    keep = body.get("keep_original_sound", True)
    if not isinstance(keep, bool):
        raise ValidationError("keep_original_sound", "Input should be a valid boolean")
    return {**body, "keep_original_sound": keep}


def check_inputs(img: ImageProbe, vid: VideoProbe, orientation: str) -> None:
    """The upstream model's limits (fal documents none of its own)."""
    check_upstream_limits(img, vid, orientation, image_field="image_url", video_field="video_url")
