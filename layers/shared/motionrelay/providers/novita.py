"""Novita adapter for `kling-v2.6-pro-motion-control` (providers.md section 3; seeds/002).

Wire format:
- `POST /v3/async/kling-v2.6-pro-motion-control` (Bearer) `{image, video, character_orientation,
  prompt?, negative_prompt? (<= 2500), keep_original_sound?, extra?{webhook{url}}}` ->
  `{"task_id": ...}`.
- `GET /v3/async/task-result?task_id=` -> `{task{task_id, task_type, status, reason, eta,
  progress_percent}, videos[]{video_url, video_url_ttl, video_type}, images[], audios[], extra{}}`;
  statuses TASK_STATUS_QUEUED / _PROCESSING / _SUCCEED / _FAILED.
- Callbacks: `extra.webhook.url` receives `{"event_type": "ASYNC_TASK_RESULT", "payload":
  <task-result>}` once the task is final. Nothing is signed: the gateway's per-job URL token
  authenticates the call and the status is always re-fetched with our key.
- Errors: the basic-error-code page lists names with HTTP statuses (INVALID_REQUEST_BODY 400,
  ILLEGAL_PROMPT 400, BILLING_BALANCE_NOT_ENOUGH 400, INVALID_API_KEY 403, RATE_LIMIT_EXCEEDED
  429, TASK_NOT_FOUND 404, CREATE_TASK_FAILED 500, ...); the errors guide adds 503/504.

Tolerant readings where the docs disagree or are silent (written down as required):
- The error body's JSON shape is not documented. Integrators observe
  `{"code": 403, "reason": "INVALID_API_KEY", "message": "invalid api-key"}`, so the error name
  is read from `reason` (or from `code` when that is a name rather than a number) and the text
  from `message` (or `msg`/`error`). A known name decides the classification, because several
  names share HTTP 400 with different meanings (validation vs. moderation vs. no balance);
  without a known name the HTTP status decides. 503/504 often come from the load balancer
  with a non-JSON body: handled by status alone.
- Status names are matched case-insensitively with or without the `TASK_STATUS_` prefix;
  TASK_STATUS_CANCELED (listed by one community schema only) is read as a failure.
- `eta` is reported only when positive: the docs' examples show 0 where no estimate exists,
  and an eta of 0 on an unfinished task must not make the poller spin.
- Task failure reasons are free text; reasons naming illegal/inappropriate/NSFW content or
  a content policy become `provider_moderation`, anything else `provider_failed`.
- `task_id` is read from the top level (documented) or from `data.task_id`.
- Only the Pro endpoint is documented: qualities {"pro"}. `image` may be base64 but `video`
  must be a URL; one `inline_base64` flag covers both, so it is False.
- "10MB" is read as 10 MiB, like the other adapters. The prompt has no documented limit;
  the upstream model's 2500 characters is kept.
- The task-result page marks `Content-Type: application/json` as required even for the GET,
  so it is sent on both calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from motionrelay.domain.job import ProviderState, ProviderStatus
from motionrelay.providers.base import (
    CallbackHint,
    CallbackRejected,
    Capabilities,
    ProviderError,
    SubmitSpec,
    finite_number,
    json_body,
    percent,
    retry_after_seconds,
)

NAME = "novita"
DEFAULT_BASE_URL = "https://api.novita.ai"
SUBMIT_PATH = "/v3/async/kling-v2.6-pro-motion-control"
STATUS_PATH = "/v3/async/task-result"
CALLBACK_EVENT = "ASYNC_TASK_RESULT"
MB = 1024 * 1024

CAPABILITIES = Capabilities(
    callbacks=True,
    callback_auth="url-token",  # Novita does not sign webhooks
    inline_base64=False,  # `video` must be a URL ("Reference motion video URL")
    max_image_bytes=10 * MB,
    max_video_bytes=10 * MB,
    max_video_seconds_image_orientation=10,
    max_video_seconds_video_orientation=30,
    min_video_seconds=3,
    qualities=frozenset({"pro"}),
    prompt=True,
    negative_prompt=True,
    sound_control=True,
    progress=True,
    max_prompt_chars=2500,
    video_containers=frozenset({"mp4", "mov"}),
)

_STATES = {
    "QUEUED": ProviderState.QUEUED,
    "PROCESSING": ProviderState.RUNNING,
    "SUCCEED": ProviderState.SUCCEEDED,
    "SUCCEEDED": ProviderState.SUCCEEDED,
    "FAILED": ProviderState.FAILED,
    "CANCELED": ProviderState.FAILED,
    "CANCELLED": ProviderState.FAILED,
}
_CANCELED = {"CANCELED", "CANCELLED"}

# Documented error names -> (stable code, retryable on submit). Account and configuration
# faults (balance, key, permissions) are retryable: failover moves to a provider without them.
_ERRORS: dict[str, tuple[str, bool]] = {
    "INVALID_REQUEST_BODY": ("provider_validation_error", False),
    "IMAGE_FILE_EXCEEDS_MAX_SIZE": ("provider_validation_error", False),
    "INVALID_IMAGE_FORMAT": ("provider_validation_error", False),
    "IMAGE_EXCEEDS_MAX_RESOLUTION": ("provider_validation_error", False),
    "INVALID_IMAGE_SIZE": ("provider_validation_error", False),
    "IMAGE_NO_FACE_DETECTED": ("provider_validation_error", False),
    "INVALID_CUSTOM_OUTPUT_PATH": ("provider_validation_error", False),
    "INVALID_AUDIO_FILE": ("provider_validation_error", False),
    "ILLEGAL_PROMPT": ("provider_moderation", False),
    "ILLEGAL_IMAGE_CONTENT": ("provider_moderation", False),
    "BILLING_BALANCE_NOT_ENOUGH": ("provider_insufficient_credits", True),
    "NOT_ENOUGH_BALANCE": ("provider_insufficient_credits", True),  # seen in community copies
    "MISSING_API_KEY": ("provider_unauthorized", True),
    "INVALID_API_KEY": ("provider_unauthorized", True),
    "API_NOT_ALLOWED": ("provider_forbidden", True),
    "FEATURE_NOT_ALLOWED": ("provider_forbidden", True),
    "BILLING_AUTH_FAILED": ("provider_forbidden", True),
    "NEED_REAL_NAME_VERIFY": ("provider_forbidden", True),
    "API_NOT_FOUND": ("provider_not_found", True),
    "TASK_NOT_FOUND": ("provider_not_found", True),
    "RATE_LIMIT_EXCEEDED": ("provider_rate_limited", True),
    "CREATE_TASK_FAILED": ("provider_error", True),
    "GET_RESULT_FAILED": ("provider_error", True),
    "BILLING_FAILED": ("provider_error", True),
    "TASK_FAILED": ("provider_error", True),
}
_STATUS_CODES = {
    400: "provider_validation_error",
    401: "provider_unauthorized",
    403: "provider_forbidden",
    404: "provider_not_found",
    408: "provider_timeout",
    429: "provider_rate_limited",
    503: "provider_unavailable",
    504: "provider_timeout",
}
_MODERATION = re.compile(
    r"illegal|inappropriate|nsfw|content polic|moderation|risk control|sensitive", re.IGNORECASE
)


# The provider secret's fields this adapter needs (MOTIONRELAY_NOVITA_<field>); the registry reads them.
CREDENTIALS = ("API_KEY",)


def from_credentials(base_url: str, credentials: Mapping[str, str]) -> NovitaAdapter:
    return NovitaAdapter(api_key=credentials["API_KEY"], base_url=base_url)


class NovitaAdapter:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, api_key: str, base_url: str = "") -> None:
        self._api_key = api_key
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def signs_callbacks(self) -> bool:
        return False  # nothing to verify: the URL token and the re-fetch carry the trust

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"}

    # --- submit -------------------------------------------------------------------------
    def build_submit(self, spec: SubmitSpec) -> httpx.Request:
        if spec.quality not in CAPABILITIES.qualities:
            # Only the Pro endpoint exists; never pay for a tier the caller did not ask for.
            raise ProviderError(NAME, "provider_validation_error",
                                f"Novita offers no {spec.quality!r} quality (pro only)", retryable=False)
        body: dict[str, Any] = {
            "image": spec.image_url,
            "video": spec.video_url,
            "character_orientation": spec.character_orientation,
            "keep_original_sound": spec.keep_original_sound,
        }
        if spec.prompt:
            body["prompt"] = spec.prompt
        if spec.negative_prompt:
            body["negative_prompt"] = spec.negative_prompt
        if spec.callback_url:
            body["extra"] = {"webhook": {"url": spec.callback_url}}
        return httpx.Request("POST", f"{self._base_url}{SUBMIT_PATH}", headers=self._headers(), json=body)

    def parse_submit(self, response: httpx.Response) -> str:
        body = json_body(response)
        if not response.is_success:
            raise _error(response, body, status_call=False)
        task_id = _submit_task_id(body)
        if task_id:
            return task_id
        if isinstance(body, dict) and _error_name(body) in _ERRORS:
            raise _error(response, body, status_call=False)  # an error envelope under HTTP 2xx
        raise ProviderError(NAME, "provider_bad_response", "submit returned no task_id",
                            retryable=True, http_status=response.status_code)

    # --- status -------------------------------------------------------------------------
    def build_status(self, task_id: str) -> httpx.Request:
        return httpx.Request("GET", f"{self._base_url}{STATUS_PATH}", params={"task_id": task_id},
                             headers=self._headers())

    def parse_status(self, response: httpx.Response) -> ProviderStatus:
        body = json_body(response)
        if not response.is_success:
            raise _error(response, body, status_call=True)
        task = body.get("task") if isinstance(body, dict) else None
        if not isinstance(task, dict):
            if isinstance(body, dict) and _error_name(body) in _ERRORS:
                raise _error(response, body, status_call=True)
            raise ProviderError(NAME, "provider_bad_response", "task-result returned no task",
                                retryable=True, http_status=response.status_code)
        raw_status = _status_name(task.get("status"))
        state = _STATES.get(raw_status)
        if state is None:
            raise ProviderError(NAME, "provider_bad_response", f"unknown status {task.get('status')!r}",
                                retryable=True, http_status=response.status_code)
        if state is ProviderState.SUCCEEDED:
            url = _video_url(body.get("videos"))
            if not url:
                return ProviderStatus(ProviderState.FAILED, error_code="provider_no_output",
                                      error_message="Novita reported success without a video URL")
            return ProviderStatus(state, progress=100, output_url=url)
        if state is ProviderState.FAILED:
            return _failure(raw_status, str(task.get("reason") or "").strip())
        eta = finite_number(task.get("eta"))
        return ProviderStatus(state, progress=percent(task.get("progress_percent")),
                              eta_seconds=eta if eta and eta > 0 else None)

    # --- callbacks ----------------------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float) -> CallbackHint:
        try:
            body = json.loads(raw_body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep to parse
            raise CallbackRejected("callback body is not JSON") from exc
        if not isinstance(body, dict):
            raise CallbackRejected("callback body is not a JSON object")
        if body.get("event_type") != CALLBACK_EVENT:
            raise CallbackRejected(f"not an {CALLBACK_EVENT} event")
        payload = body.get("payload")
        task = payload.get("task") if isinstance(payload, dict) else None
        task_id = task.get("task_id") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or not task_id.strip():
            raise CallbackRejected("callback names no task id")
        return CallbackHint(task_id=task_id.strip())


# ----------------------------------------------------------------------- helpers


def _submit_task_id(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    for candidate in (body.get("task_id"), data.get("task_id")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def _error_name(body: dict[str, Any]) -> str:
    """The documented error name: `reason`, or `code` when it holds a name, not a number."""
    for key in ("reason", "code"):
        value = body.get(key)
        if isinstance(value, str) and value.strip() and not value.strip().isdigit():
            return value.strip().upper()
    return ""


def _error_message(body: Any, name: str, status: int) -> str:
    if isinstance(body, dict):
        for key in ("message", "msg", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:500]
    return name or f"HTTP {status}"


def _error(response: httpx.Response, body: Any, *, status_call: bool) -> ProviderError:
    status = response.status_code
    name = _error_name(body) if isinstance(body, dict) else ""
    known = _ERRORS.get(name)
    if known is not None:
        code, retryable = known
    else:
        code = _STATUS_CODES.get(status, "provider_error" if status >= 500 else f"provider_code_{status}")
        retryable = status in (401, 403, 404, 408, 429) or status >= 500
    if status_call:
        # task-result: only an unknown task is final; anything else is worth another poll.
        unknown_task = name == "TASK_NOT_FOUND" or (known is None and status == 404)
        retryable = not unknown_task
    message = _error_message(body, name, status)
    if name and name not in message:
        message = f"{name}: {message}"
    return ProviderError(NAME, code, message[:500], retryable=retryable, http_status=status,
                         retry_after=retry_after_seconds(response))


def _status_name(value: Any) -> str:
    name = str(value or "").strip().upper()
    return name.removeprefix("TASK_STATUS_")


def _failure(raw_status: str, reason: str) -> ProviderStatus:
    if raw_status in _CANCELED:
        message = "Novita canceled the task" + (f": {reason}" if reason else "")
    else:
        message = reason or "Novita reported the task as failed"
    code = "provider_moderation" if _MODERATION.search(reason) else "provider_failed"
    return ProviderStatus(ProviderState.FAILED, error_code=code, error_message=message[:1000])


def _video_url(videos: Any) -> str | None:
    if not isinstance(videos, list):
        return None
    for video in videos:
        url = video.get("video_url") if isinstance(video, dict) else None
        if isinstance(url, str) and url.strip():
            return url.strip()
    return None
