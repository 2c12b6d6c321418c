"""The official Kling AI API adapter for motion control with `kling-v2-6` (providers.md 6.1).

Wire format:
- Auth: a JWT (HS256) `{iss: <access key>, exp: now+1800, nbf: now-5}` signed with the secret
  key, as `Authorization: Bearer <jwt>`.
- `POST /v1/videos/motion-control` `{model_name, image_url, video_url, character_orientation,
  mode: std|pro, keep_original_sound: "yes"|"no", prompt?, callback_url?, external_task_id}` ->
  `{code (0 = ok), message, request_id, data{task_id, task_status, task_info{external_task_id}}}`.
- `GET /v1/videos/motion-control/{id}` -> `data{task_id, task_status submitted | processing |
  succeed | failed, task_status_msg, task_info, task_result{videos[]{id, url, duration}},
  final_unit_deduction}`.
- Callbacks: the task object POSTed to `callback_url` on every status change; unsigned.

Tolerant readings where the docs are silent (written down as required):
- The JWT is cached and a new one made when less than 5 minutes of its 30 are left. It is
  made with the standard library's HMAC-SHA256 (PyJWT is not in the layer); the header and
  claims are exactly the documented ones.
- `external_task_id` is our job id. Kling's single-task query takes either id in the path
  ("choose one between task_id and external_task_id"): `build_lookup(job_id)` is that query,
  and `parse_lookup` accepts its answer only when `task_info.external_task_id` is our job id;
  "task not found" (HTTP 404 or code 1203) means nothing was accepted.
- Callbacks carry no signature (none documented): the per-job URL token authenticates them,
  the status is always re-fetched. Non-terminal ones are progress hints. The task id is read
  from `task_id` or `data.task_id`.
- Kling reports no progress percentage; `final_unit_deduction` (units charged, a numeric
  string in copies of the docs) is the cost, read from `data` or `data.task_result`.
- Error codes (third-party copies of the official table): 1000-1004 authentication,
  1100-1102 account/balance, 1103 and 1304 permissions/IP allow-list, 1200-1202 invalid
  request, 1203 no such resource, 1300/1301 content policy, 1302/1303 rate/concurrency,
  5000-5002 server. Account and configuration faults fail over; request faults are final.
- A `failed` task whose message mentions risk control, content security or sensitive content
  is `provider_moderation`, any other `provider_failed`.
- Inputs by URL only (`image_url` may be base64, `video_url` may not: one flag, False).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from motionrelay.domain.job import ProviderState, ProviderStatus
from motionrelay.providers.base import (
    UPSTREAM_LIMITS,
    CallbackHint,
    CallbackRejected,
    Capabilities,
    ProviderError,
    SubmitSpec,
    finite_number,
    json_body,
    mentions,
    retry_after_seconds,
)

NAME = "kling"
DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
MODEL = "kling-v2-6"
PATH = "/v1/videos/motion-control"
TOKEN_SECONDS = 1800
TOKEN_REFRESH_SECONDS = 300  # a new token when less than this is left
MODERATION_WORDS = ("risk", "content security", "sensitive", "policy", "inappropriate", "moderation")

CAPABILITIES = Capabilities(
    callbacks=True,
    callback_auth="url-token",  # Kling documents no callback signature
    inline_base64=False,
    qualities=frozenset({"std", "pro"}),
    prompt=True,
    negative_prompt=False,
    sound_control=True,
    progress=False,
    **UPSTREAM_LIMITS,
)

_STATES = {
    "submitted": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "succeed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
}
# Body code -> (stable code, retryable on submit).
_ERRORS: dict[int, tuple[str, bool]] = {
    **{c: ("provider_unauthorized", True) for c in (1000, 1001, 1002, 1003, 1004)},
    1100: ("provider_forbidden", True),
    1101: ("provider_insufficient_credits", True),
    1102: ("provider_insufficient_credits", True),
    1103: ("provider_forbidden", True),
    1200: ("provider_validation_error", False),
    1201: ("provider_validation_error", False),
    1202: ("provider_validation_error", False),
    1203: ("provider_not_found", True),
    1300: ("provider_moderation", False),
    1301: ("provider_moderation", False),
    1302: ("provider_rate_limited", True),
    1303: ("provider_rate_limited", True),
    1304: ("provider_forbidden", True),
    5000: ("provider_error", True),
    5001: ("provider_unavailable", True),
    5002: ("provider_timeout", True),
}
_STATUS_CODES = {400: "provider_validation_error", 401: "provider_unauthorized", 403: "provider_forbidden",
                 404: "provider_not_found", 429: "provider_rate_limited", 500: "provider_error",
                 503: "provider_unavailable", 504: "provider_timeout"}

# The provider secret's fields (MOTIONRELAY_KLING_ACCESS_KEY, MOTIONRELAY_KLING_SECRET_KEY).
CREDENTIALS = ("ACCESS_KEY", "SECRET_KEY")


def from_credentials(base_url: str, credentials: Mapping[str, str]) -> KlingAdapter:
    return KlingAdapter(access_key=credentials["ACCESS_KEY"], secret_key=credentials["SECRET_KEY"],
                        base_url=base_url)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_jwt(access_key: str, secret_key: str, now: float) -> str:
    """Kling's API token: HS256 over `{iss, exp: now+1800, nbf: now-5}`."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iss": access_key, "exp": int(now) + TOKEN_SECONDS, "nbf": int(now) - 5}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret_key.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


class KlingAdapter:
    name = NAME
    capabilities = CAPABILITIES
    signs_callbacks = False  # the URL token and the re-fetch carry the trust

    def __init__(self, access_key: str, secret_key: str, base_url: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._clock = clock
        self._token: tuple[float, str] | None = None  # (expires at, jwt)
        self._lock = threading.Lock()

    def _headers(self, json_body_too: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._jwt()}"}
        if json_body_too:
            headers["Content-Type"] = "application/json"
        return headers

    def _jwt(self) -> str:
        now = self._clock()
        with self._lock:
            if self._token is None or self._token[0] - now < TOKEN_REFRESH_SECONDS:
                self._token = (int(now) + TOKEN_SECONDS, make_jwt(self._access_key, self._secret_key, now))
            return self._token[1]

    def _task_url(self, task_id: str) -> str:
        return f"{self._base_url}{PATH}/{quote(task_id, safe='')}"

    # --- submit -------------------------------------------------------------------------
    def build_submit(self, spec: SubmitSpec) -> httpx.Request:
        if spec.quality not in CAPABILITIES.qualities:
            raise ProviderError(NAME, "provider_validation_error", f"Kling offers no {spec.quality!r} mode",
                                retryable=False)
        body: dict[str, Any] = {
            "model_name": MODEL,
            "image_url": spec.image_url,
            "video_url": spec.video_url,
            "character_orientation": spec.character_orientation,
            "mode": spec.quality,
            "keep_original_sound": "yes" if spec.keep_original_sound else "no",
        }
        if spec.prompt:
            body["prompt"] = spec.prompt
        if spec.callback_url:
            body["callback_url"] = spec.callback_url
        if spec.job_id:
            body["external_task_id"] = spec.job_id
        return httpx.Request("POST", f"{self._base_url}{PATH}", headers=self._headers(True), json=body)

    def parse_submit(self, response: httpx.Response) -> str:
        data = self._data(response, status_call=False)
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or not str(task_id).strip():
            raise ProviderError(NAME, "provider_bad_response", "submit answer has no task_id",
                                retryable=True, http_status=response.status_code)
        return str(task_id).strip()

    # --- status -------------------------------------------------------------------------
    def build_status(self, task_id: str) -> httpx.Request:
        return httpx.Request("GET", self._task_url(task_id), headers=self._headers())

    def parse_status(self, response: httpx.Response) -> ProviderStatus:
        data = self._data(response, status_call=True)
        if not isinstance(data, dict):
            raise ProviderError(NAME, "provider_bad_response", "query answer has no data",
                                retryable=True, http_status=response.status_code)
        state = _STATES.get(str(data.get("task_status", "")).lower())
        if state is None:
            raise ProviderError(NAME, "provider_bad_response",
                                f"unknown task_status {data.get('task_status')!r}",
                                retryable=True, http_status=response.status_code)
        cost = _cost(data)
        if state is ProviderState.SUCCEEDED:
            url = _video_url(data.get("task_result"))
            if not url:
                return ProviderStatus(ProviderState.FAILED, error_code="provider_no_output", cost=cost,
                                      error_message="Kling reported success without a video URL")
            return ProviderStatus(state, progress=100, output_url=url, cost=cost)
        if state is ProviderState.FAILED:
            message = str(data.get("task_status_msg") or "").strip() or "Kling reported the task as failed"
            code = "provider_moderation" if mentions(message, MODERATION_WORDS) else "provider_failed"
            return ProviderStatus(state, error_code=code, error_message=message[:1000], cost=cost)
        return ProviderStatus(state)

    # --- lookup by our job id (external_task_id) ----------------------------------------
    def build_lookup(self, job_id: str) -> httpx.Request:
        return self.build_status(job_id)

    def parse_lookup(self, response: httpx.Response, job_id: str) -> str | None:
        """The task Kling made for `job_id`, or None when it made none (the submit was not taken).
        Raises ProviderError when Kling's answer says neither."""
        try:
            data = self._data(response, status_call=True)
        except ProviderError as exc:
            if exc.code == "provider_not_found":
                return None
            raise
        info = data.get("task_info") if isinstance(data, dict) else None
        external = info.get("external_task_id") if isinstance(info, dict) else None
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if external != job_id or not task_id:
            raise ProviderError(NAME, "provider_bad_response", "lookup answered with another task",
                                retryable=True, http_status=response.status_code)
        return str(task_id)

    # --- callbacks ----------------------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float) -> CallbackHint:
        try:
            body = json.loads(raw_body)
        except (ValueError, RecursionError) as exc:
            raise CallbackRejected("callback body is not JSON") from exc
        if not isinstance(body, dict):
            raise CallbackRejected("callback body is not a JSON object")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        for candidate in (body.get("task_id"), data.get("task_id")):
            if isinstance(candidate, (str, int)) and not isinstance(candidate, bool):
                if str(candidate).strip():
                    return CallbackHint(task_id=str(candidate).strip())
        raise CallbackRejected("callback names no task id")

    # --- shared -------------------------------------------------------------------------
    def _data(self, response: httpx.Response, *, status_call: bool) -> Any:
        body = json_body(response)
        code = body.get("code") if isinstance(body, dict) else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        if response.is_success and code in (None, 0) and isinstance(body, dict):
            return body.get("data")
        status = response.status_code
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
        known = _ERRORS.get(code) if code is not None else None
        if known is not None:
            name, retryable = known
        else:
            name = _STATUS_CODES.get(status, f"provider_code_{code or status}")
            retryable = status in (401, 402, 403, 404, 408, 429) or status >= 500
        if status_call:
            retryable = name != "provider_not_found"
        elif code in (1200, 1201) and "external_task_id" in message:
            # Our job id is already a task's: an earlier submit of this job was taken after all.
            # Not a request fault: ambiguous, so placement looks the task up (build_lookup).
            raise ProviderError(NAME, "provider_duplicate_submit", message[:500], retryable=True,
                                http_status=status, ambiguous=True)
        message = message or f"HTTP {status}"
        if code is not None:
            message = f"{code}: {message}"
        raise ProviderError(NAME, name, message[:500], retryable=retryable, http_status=status,
                            retry_after=retry_after_seconds(response))


def _video_url(result: Any) -> str | None:
    videos = result.get("videos") if isinstance(result, dict) else None
    for video in videos if isinstance(videos, list) else ():
        url = video.get("url") if isinstance(video, dict) else None
        if isinstance(url, str) and url.strip():
            return url.strip()
    return None


def _cost(data: dict[str, Any]) -> dict[str, Any] | None:
    result = data.get("task_result") if isinstance(data.get("task_result"), dict) else {}
    units = finite_number(data.get("final_unit_deduction", result.get("final_unit_deduction")))
    return {"units": units} if units is not None else None
