"""Kie.ai adapter for `kling-2.6/motion-control` (providers.md section 4; seeds/003).

Wire format:
- `POST /api/v1/jobs/createTask` `{model, callBackUrl, input{prompt, input_urls[1],
  video_urls[1], character_orientation, mode: "720p"|"1080p"}}` -> `{code, msg, data{taskId}}`.
- `GET /api/v1/jobs/recordInfo?taskId=` -> `data{state, resultJson (a JSON *string*),
  failCode, failMsg, costTime, creditsConsumed?}`; states waiting/queuing/generating/success/fail.
- Callbacks: `X-Webhook-Signature` = base64(HMAC-SHA256(webhookHmacKey, taskId + "." +
  X-Webhook-Timestamp)), opt-in per account; the body itself is not signed.

Tolerant readings where the docs disagree or are silent (written down as required):
- Kie may answer HTTP 200 with an error `code` in the body: errors are classified by the body
  `code` when there is one, else by the HTTP status.
- `resultJson` is documented as a string; a JSON object is accepted too. `failCode` is a
  string in the schema and an int in copies: both are accepted.
- The callback's task id is read from `taskId`, `data.taskId` or `data.task_id` (the docs'
  example and community code differ). The callback is only a hint: the status is re-fetched.
- The timestamp window is not documented; we enforce +-300 s.
- The schema has no `keep_original_sound` or `negative_prompt`: the capability set says so,
  and requests that need them are refused before Kie is paid rather than silently dropped.
- `mode` is the Standard/Pro switch with resolution values: std -> 720p, pro -> 1080p.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
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
    http_status_retryable,
    retry_after_seconds,
)

NAME = "kie"
DEFAULT_BASE_URL = "https://api.kie.ai"
MODEL = "kling-2.6/motion-control"
SIGNATURE_WINDOW_SECONDS = 300
MB = 1024 * 1024

CAPABILITIES = Capabilities(
    callbacks=True,
    callback_auth="hmac-taskid-timestamp",
    inline_base64=False,  # "File URL after upload, not file content"
    max_image_bytes=10 * MB,
    max_video_bytes=100 * MB,
    max_video_seconds_image_orientation=10,
    max_video_seconds_video_orientation=30,
    min_video_seconds=3,
    qualities=frozenset({"std", "pro"}),
    prompt=True,
    negative_prompt=False,
    sound_control=False,
    progress=False,  # recordInfo's progress is documented for sora2 models only
    video_containers=frozenset({"mp4", "mov", "mkv"}),
)

_MODES = {"std": "720p", "pro": "1080p"}
_STATES = {
    "waiting": ProviderState.QUEUED,
    "queuing": ProviderState.QUEUED,
    "generating": ProviderState.RUNNING,
    "success": ProviderState.SUCCEEDED,
    "fail": ProviderState.FAILED,
}
# Body codes that mean "this provider cannot take work right now": retry or fail over.
# 402 insufficient credits and 433 sub-key limit are account states, not request faults;
# 401/404 on submit are configuration faults that another provider does not share.
_RETRYABLE_CODES = {401, 402, 404, 408, 429, 433, 455, 500, 502, 503, 504, 505}
_CODE_NAMES = {
    401: "provider_unauthorized",
    402: "provider_insufficient_credits",
    404: "provider_not_found",
    422: "provider_validation_error",
    429: "provider_rate_limited",
    433: "provider_quota_exceeded",
    455: "provider_maintenance",
    500: "provider_error",
    501: "generation_failed",
    505: "provider_feature_disabled",
}


# The provider secret's fields this adapter needs (MOTIONRELAY_KIE_<field>); the registry reads them.
CREDENTIALS = ("API_KEY", "WEBHOOK_HMAC_KEY")


def from_credentials(base_url: str, credentials: Mapping[str, str]) -> KieAdapter:
    return KieAdapter(api_key=credentials["API_KEY"], base_url=base_url,
                      webhook_hmac_key=credentials.get("WEBHOOK_HMAC_KEY", ""))


class KieAdapter:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, api_key: str, base_url: str = "", webhook_hmac_key: str = "") -> None:
        self._api_key = api_key
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._hmac_key = webhook_hmac_key

    @property
    def signs_callbacks(self) -> bool:
        """Kie signs callbacks only when the account enabled `webhookHmacKey`."""
        return bool(self._hmac_key)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"}

    # --- submit -------------------------------------------------------------------------
    def build_submit(self, spec: SubmitSpec) -> httpx.Request:
        task_input: dict[str, Any] = {
            "input_urls": [spec.image_url],
            "video_urls": [spec.video_url],
            "character_orientation": spec.character_orientation,
            "mode": _MODES[spec.quality],
        }
        if spec.prompt:
            task_input["prompt"] = spec.prompt
        body: dict[str, Any] = {"model": MODEL, "input": task_input}
        if spec.callback_url:
            body["callBackUrl"] = spec.callback_url
        return httpx.Request(
            "POST", f"{self._base_url}/api/v1/jobs/createTask", headers=self._headers(), json=body
        )

    def parse_submit(self, response: httpx.Response) -> str:
        data = self._envelope_data(response)
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not task_id:
            raise ProviderError(NAME, "provider_bad_response", "createTask returned no taskId",
                                retryable=True, http_status=response.status_code)
        return str(task_id)

    # --- status -------------------------------------------------------------------------
    def build_status(self, task_id: str) -> httpx.Request:
        return httpx.Request(
            "GET", f"{self._base_url}/api/v1/jobs/recordInfo", params={"taskId": task_id},
            headers={"Authorization": f"Bearer {self._api_key}"},
        )

    def parse_status(self, response: httpx.Response) -> ProviderStatus:
        data = self._envelope_data(response, status_call=True)
        if not isinstance(data, dict):
            raise ProviderError(NAME, "provider_bad_response", "recordInfo returned no data",
                                retryable=True, http_status=response.status_code)
        state = _STATES.get(str(data.get("state", "")).lower())
        if state is None:
            raise ProviderError(NAME, "provider_bad_response", f"unknown state {data.get('state')!r}",
                                retryable=True, http_status=response.status_code)
        cost = _cost(data)
        if state is ProviderState.SUCCEEDED:
            urls = _result_urls(data.get("resultJson"))
            if not urls:
                # A success without a URL cannot be transferred: treat as a provider failure.
                return ProviderStatus(ProviderState.FAILED, error_code="provider_no_output",
                                      error_message="Kie reported success without a result URL",
                                      cost=cost)
            return ProviderStatus(state, progress=100, output_url=urls[0], cost=cost)
        if state is ProviderState.FAILED:
            fail_code = str(data.get("failCode") or "").strip()
            return ProviderStatus(
                state,
                error_code="provider_failed" + (f"_{fail_code}" if fail_code else ""),
                error_message=str(data.get("failMsg") or "Kie reported the task as failed"),
                cost=cost,
            )
        return ProviderStatus(state)

    # --- callbacks ----------------------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float) -> CallbackHint:
        try:
            body = json.loads(raw_body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep to parse
            raise CallbackRejected("callback body is not JSON") from exc
        task_id = _callback_task_id(body)
        if not task_id:
            raise CallbackRejected("callback names no task id")
        if self._hmac_key:
            self._check_signature(headers, task_id, now)
        return CallbackHint(task_id=task_id)

    def _check_signature(self, headers: Mapping[str, str], task_id: str, now: float) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp = lowered.get("x-webhook-timestamp", "")
        signature = lowered.get("x-webhook-signature", "")
        if not timestamp or not signature:
            raise CallbackRejected("missing X-Webhook-Timestamp or X-Webhook-Signature")
        try:
            sent_at = int(timestamp)
        except ValueError as exc:
            raise CallbackRejected("X-Webhook-Timestamp is not an integer") from exc
        if abs(now - sent_at) > SIGNATURE_WINDOW_SECONDS:
            raise CallbackRejected("X-Webhook-Timestamp outside the accepted window")
        expected = base64.b64encode(
            hmac.new(self._hmac_key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            raise CallbackRejected("signature mismatch")

    # --- shared -------------------------------------------------------------------------
    def _envelope_data(self, response: httpx.Response, status_call: bool = False) -> Any:
        try:
            body = response.json()
        except (ValueError, RecursionError):
            body = None
        code = _int(body.get("code")) if isinstance(body, dict) else None
        if response.is_success and (code is None or code == 200):
            return body.get("data") if isinstance(body, dict) else None
        effective = code if code not in (None, 200) else response.status_code
        message = str(body.get("msg") or "") if isinstance(body, dict) else ""
        message = message or f"HTTP {response.status_code}"
        if status_call:
            # recordInfo: an unknown task is final; anything else is worth another poll.
            retryable = effective != 404
        else:
            body_code_given = code not in (None, 200)
            retryable = effective in _RETRYABLE_CODES or (
                not body_code_given and http_status_retryable(response.status_code)
            )
        raise ProviderError(
            NAME, _CODE_NAMES.get(effective, f"provider_code_{effective}"), message[:500],
            retryable=retryable, http_status=response.status_code,
            retry_after=retry_after_seconds(response),
        )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _result_urls(result_json: Any) -> list[str]:
    if isinstance(result_json, str) and result_json.strip():
        try:
            result_json = json.loads(result_json)
        except (ValueError, RecursionError):
            return []
    if isinstance(result_json, dict):
        urls = result_json.get("resultUrls") or []
        return [str(u) for u in urls if isinstance(u, str) and u]
    return []


def _cost(data: dict[str, Any]) -> dict[str, Any] | None:
    credits = data.get("creditsConsumed")
    if isinstance(credits, (int, float)) and not isinstance(credits, bool):
        return {"credits": credits}
    return None


def _callback_task_id(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    for candidate in (body.get("taskId"), data.get("taskId"), data.get("task_id")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None
