"""Pixazo adapter for Kling Video v2.6 Standard Motion Control (providers.md section 5; seeds/004).

Wire format (an Azure API Management gateway; every call carries the same three headers,
`Ocp-Apim-Subscription-Key: <key>`, `Cache-Control: no-cache`, `Content-Type: application/json`):
- `POST /kling-video-v2-6-standard-motion-control/v1/kling-video-v2-6-standard-motion-control-request`
  `{image_url, video_url, character_orientation, keep_original_sound}` (no prompt field)
  -> `{status: "IN_QUEUE", request_id, message}`.
- `POST .../kling-video-v2-6-standard-motion-control-request-result` `{request_id}` (a POST, not a
  GET) -> `{status: IN_QUEUE|IN_PROGRESS|COMPLETED|FAILED, request_id, ...}`: `progress_percent` and
  `estimated_remaining_seconds` while IN_PROGRESS; `output_url` (+ duration_seconds, width, height,
  content_type, has_audio) when COMPLETED; `error_message` when FAILED.
- Errors: 400/401/403/404/429/500 with body `{"error": "..."}`. No callbacks, no uploads.

Tolerant readings where the docs disagree or are silent (written down as required):
- The error table says a success is `{"success": true, ...}` while the examples show
  `{status, request_id, ...}`: a 2xx is read by its `request_id`/`status`; a 2xx carrying
  `success: false` or an `error` without a `request_id` is treated as an unusable answer.
- Errors are classified by HTTP status; the message is read from `error` (or `message`),
  a 400 whose text speaks of moderation/NSFW becomes `provider_moderation`.
- Status names are compared case-insensitively; `progress_percent` and
  `estimated_remaining_seconds` are read whenever present (also while IN_QUEUE).
- An unknown `request_id` on the result endpoint is expected as HTTP 404 (the table's
  "resource ... could not be found") and is final; any other status-call failure is retried.
- Only the Standard variant is documented (a Pro path is NOT FOUND), so qualities = {"std"}.
- Video length: the page says "under 10 seconds" for every orientation; we take that
  stricter reading (10 s for both orientations) over the upstream model's 30 s, and the
  upstream 3 s minimum.
- Byte caps are not documented. Image: the upstream-common 10 MB. Video: no Pixazo source
  supports the strict 10 MB some resellers use, so the upstream model's 100 MB applies.
- Video container: the page only names MP4 ("reference video ... (MP4)"), so only mp4.
- Pixazo documents no prompt/negative prompt: capabilities say so, the gateway refuses such
  jobs for Pixazo, and `build_submit` raises ValueError rather than dropping them silently.
- Cost: the price ("$0.07, All Resolution", unit unknown) is never reported per request, so
  no cost is recorded.
"""

from __future__ import annotations

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
    http_status_error,
    json_body,
    mentions,
    percent,
    seconds,
)

NAME = "pixazo"
DEFAULT_BASE_URL = "https://gateway.pixazo.ai"
_API = "/kling-video-v2-6-standard-motion-control/v1/kling-video-v2-6-standard-motion-control"
SUBMIT_PATH = f"{_API}-request"
RESULT_PATH = f"{_API}-request-result"
MB = 1024 * 1024

CAPABILITIES = Capabilities(
    callbacks=False,
    callback_auth="none",
    inline_base64=False,  # URLs "must be publicly accessible"
    max_image_bytes=10 * MB,
    max_video_bytes=100 * MB,
    max_video_seconds_image_orientation=10,
    max_video_seconds_video_orientation=10,  # "under 10 seconds", whatever the orientation
    min_video_seconds=3,
    qualities=frozenset({"std"}),
    prompt=False,
    negative_prompt=False,
    sound_control=True,
    progress=True,
    video_containers=frozenset({"mp4"}),
)

_STATES = {
    "IN_QUEUE": ProviderState.QUEUED,
    "IN_PROGRESS": ProviderState.RUNNING,
    "COMPLETED": ProviderState.SUCCEEDED,
    "FAILED": ProviderState.FAILED,
}
_MODERATION_WORDS = ("moderation", "nsfw", "content policy", "inappropriate", "sensitive content", "flagged")


# The provider secret's fields this adapter needs (MOTIONRELAY_PIXAZO_<field>); the registry reads them.
CREDENTIALS = ("API_KEY",)


def from_credentials(base_url: str, credentials: Mapping[str, str]) -> PixazoAdapter:
    return PixazoAdapter(api_key=credentials["API_KEY"], base_url=base_url)


class PixazoAdapter:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, api_key: str, base_url: str = "") -> None:
        self._api_key = api_key
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def signs_callbacks(self) -> bool:
        return False

    def _headers(self) -> dict[str, str]:
        return {
            "Ocp-Apim-Subscription-Key": self._api_key,
            "Cache-Control": "no-cache",
            "Content-Type": "application/json",
        }

    # --- submit -------------------------------------------------------------------------
    def build_submit(self, spec: SubmitSpec) -> httpx.Request:
        # Validation already refuses these for Pixazo; never drop a caller's input silently.
        if spec.prompt or spec.negative_prompt:
            raise ProviderError(NAME, "provider_validation_error",
                                "Pixazo has no prompt or negative_prompt field", retryable=False)
        if spec.quality not in CAPABILITIES.qualities:
            raise ProviderError(NAME, "provider_validation_error",
                                f"Pixazo only offers quality 'std', not {spec.quality!r}", retryable=False)
        body = {
            "image_url": spec.image_url,
            "video_url": spec.video_url,
            "character_orientation": spec.character_orientation,
            "keep_original_sound": spec.keep_original_sound,
        }
        return httpx.Request("POST", f"{self._base_url}{SUBMIT_PATH}", headers=self._headers(), json=body)

    def parse_submit(self, response: httpx.Response) -> str:
        body = json_body(response)
        if not response.is_success:
            raise _http_error(response, body, status_call=False)
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not request_id.strip():
            detail = _message(body) or "no request_id"
            raise ProviderError(NAME, "provider_bad_response", f"submit returned {detail}"[:500],
                                retryable=True, http_status=response.status_code)
        return request_id.strip()

    # --- status -------------------------------------------------------------------------
    def build_status(self, task_id: str) -> httpx.Request:
        return httpx.Request("POST", f"{self._base_url}{RESULT_PATH}", headers=self._headers(),
                             json={"request_id": task_id})

    def parse_status(self, response: httpx.Response) -> ProviderStatus:
        body = json_body(response)
        if not response.is_success:
            raise _http_error(response, body, status_call=True)
        raw_state = body.get("status") if isinstance(body, dict) else None
        state = _STATES.get(str(raw_state or "").strip().upper())
        if state is None:
            detail = _message(body) or f"unknown status {raw_state!r}"
            raise ProviderError(NAME, "provider_bad_response", detail[:500], retryable=True,
                                http_status=response.status_code)
        if state is ProviderState.SUCCEEDED:
            url = body.get("output_url")
            if not isinstance(url, str) or not url.strip():
                return ProviderStatus(ProviderState.FAILED, error_code="provider_no_output",
                                      error_message="Pixazo reported COMPLETED without an output_url")
            return ProviderStatus(state, progress=100, output_url=url.strip())
        if state is ProviderState.FAILED:
            message = str(body.get("error_message") or _message(body) or "Pixazo reported FAILED")
            code = "provider_moderation" if _is_moderation(message) else "provider_failed"
            return ProviderStatus(state, error_code=code, error_message=message[:500])
        return ProviderStatus(state, progress=percent(body.get("progress_percent")),
                              eta_seconds=seconds(body.get("estimated_remaining_seconds")))

    # --- callbacks ----------------------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float) -> CallbackHint:
        raise CallbackRejected("pixazo does not send callbacks")


# --- helpers ------------------------------------------------------------------------------


def _message(body: Any) -> str:
    """The error text of a body: `error` (string or `{message}`), else `message`."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    for text in (error, body.get("message")):
        if isinstance(text, str) and text.strip():
            return text.strip()
    return ""


def _http_error(response: httpx.Response, body: Any, *, status_call: bool) -> ProviderError:
    return http_status_error(NAME, response, _message(body), status_call=status_call,
                             moderation_words=_MODERATION_WORDS)


def _is_moderation(text: str) -> bool:
    return mentions(text, _MODERATION_WORDS)
