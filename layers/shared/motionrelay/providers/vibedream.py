"""VibeDream adapter for `kling-v2.6-pro-motion` (providers.md section 1; seeds/000).

Wire format (`Authorization: Bearer <key>`):
- `POST /api/v1/models/kling-v2.6-pro-motion/generate` `{image, video, character_orientation,
  prompt?, negative_prompt?, keep_original_sound}` -> `{id, status: "processing", statusUrl,
  estimatedTime ("60-180s"), costCents, createdAt}`.
- `GET /api/v1/predictions/{id}` -> `{id, modelId, modelName, status (processing|completed|failed),
  outputs (string[] | null), error (string | null), createdAt, completedAt}`.
- No callbacks, no uploads, no progress; the model is Pro only (in the path).

Tolerant readings where the docs disagree or are silent (written down as required):
- Error status codes and bodies are NOT documented: the HTTP status classifies the error
  (the stable codes below), and the message is read from a JSON body's `error` (a string,
  or an object with `message`), `message` or `detail` when present, else "HTTP <n>".
  A 400/422 whose text speaks of moderation becomes `provider_moderation` (final).
- `processing` is both queued and running (no separate queued state): it maps to RUNNING.
  Replicate-style names (`starting`/`queued`/`pending`, `succeeded`, `canceled`) are
  accepted too, since the prediction shape follows Replicate's; any other name is a bad answer.
- `outputs` is read as a list of URL strings; `{url}` objects or a bare string are accepted.
- A failure's `error` text containing moderation wording (the documented example is "flagged
  by content moderation") becomes `provider_moderation`, otherwise `provider_failed`.
- Cost: `costCents` is documented on the submit response only: `submit_details()` hands it
  ({"cents": n}) and `estimatedTime` (its lower bound, as `eta_seconds`) to the gateway,
  which records the cost on the job and plans the first poll from the ETA. A status response
  that carries them too is read the same way (tolerant).
- The video cap is the page's 10 MB (stricter than the upstream 100 MB); containers are the
  "Upload" description's MP4/MOV (the generic "Accepted" line also lists WebM, which the
  upload description does not). Durations follow the upstream model: 3-30 s, 10 s when the
  orientation follows the image. No prompt length is stated: the upstream 2500 applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

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
)

NAME = "vibedream"
DEFAULT_BASE_URL = "https://api.vibedream.ai"
MODEL = "kling-v2.6-pro-motion"
MB = 1024 * 1024

CAPABILITIES = Capabilities(
    callbacks=False,
    callback_auth="none",
    inline_base64=False,  # "Pass a public ... URL"
    max_image_bytes=10 * MB,
    max_video_bytes=10 * MB,
    max_video_seconds_image_orientation=10,
    max_video_seconds_video_orientation=30,
    min_video_seconds=3,
    qualities=frozenset({"pro"}),
    prompt=True,
    negative_prompt=True,
    sound_control=True,
    progress=False,
)

_STATES = {
    "processing": ProviderState.RUNNING,
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    # not documented; Replicate's names, accepted rather than treated as garbage
    "starting": ProviderState.QUEUED,
    "queued": ProviderState.QUEUED,
    "pending": ProviderState.QUEUED,
    "succeeded": ProviderState.SUCCEEDED,
    "canceled": ProviderState.FAILED,
}
_MODERATION_WORDS = ("moderation", "nsfw", "content policy", "inappropriate", "sensitive content", "flagged")
# "60-180s", "90s", "2-3 min": the first number and the unit
_ETA = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-\s*\d+(?:\.\d+)?)?\s*(s|secs?|seconds|m|mins?|minutes)?\s*$",
                  re.IGNORECASE)


# The provider secret's fields this adapter needs (MOTIONRELAY_VIBEDREAM_<field>); the registry reads them.
CREDENTIALS = ("API_KEY",)


def from_credentials(base_url: str, credentials: Mapping[str, str]) -> VibeDreamAdapter:
    return VibeDreamAdapter(api_key=credentials["API_KEY"], base_url=base_url)


class VibeDreamAdapter:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, api_key: str, base_url: str = "") -> None:
        self._api_key = api_key
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def signs_callbacks(self) -> bool:
        return False

    # --- submit -------------------------------------------------------------------------
    def build_submit(self, spec: SubmitSpec) -> httpx.Request:
        if spec.quality not in CAPABILITIES.qualities:
            # Only the Pro model exists; never pay for a tier the caller did not ask for.
            raise ProviderError(NAME, "provider_validation_error",
                                f"VibeDream only offers quality 'pro', not {spec.quality!r}", retryable=False)
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
        return httpx.Request(
            "POST", f"{self._base_url}/api/v1/models/{MODEL}/generate",
            headers={"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"},
            json=body,
        )

    def parse_submit(self, response: httpx.Response) -> str:
        body = json_body(response)
        if not response.is_success:
            raise _http_error(response, body, status_call=False)
        prediction_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(prediction_id, str) or not prediction_id.strip():
            detail = _message(body) or "no prediction id"
            raise ProviderError(NAME, "provider_bad_response", f"generate returned {detail}"[:500],
                                retryable=True, http_status=response.status_code)
        return prediction_id.strip()

    # --- status -------------------------------------------------------------------------
    def build_status(self, task_id: str) -> httpx.Request:
        return httpx.Request(
            "GET", f"{self._base_url}/api/v1/predictions/{quote(task_id, safe='')}",
            headers={"Authorization": f"Bearer {self._api_key}"},
        )

    def submit_details(self, response: httpx.Response) -> ProviderStatus | None:
        """What the submit answer says besides the id: `costCents` and `estimatedTime` are
        documented there (and only there), so the job records them from it."""
        body = json_body(response)
        if not response.is_success or not isinstance(body, dict):
            return None
        return ProviderStatus(ProviderState.RUNNING, eta_seconds=_eta_seconds(body.get("estimatedTime")),
                              cost=_cost(body.get("costCents")))

    def parse_status(self, response: httpx.Response) -> ProviderStatus:
        body = json_body(response)
        if not response.is_success:
            raise _http_error(response, body, status_call=True)
        raw_state = body.get("status") if isinstance(body, dict) else None
        state = _STATES.get(str(raw_state or "").strip().lower())
        if state is None:
            detail = _message(body) or f"unknown status {raw_state!r}"
            raise ProviderError(NAME, "provider_bad_response", detail[:500], retryable=True,
                                http_status=response.status_code)
        cost = _cost(body.get("costCents"))
        if state is ProviderState.SUCCEEDED:
            urls = _output_urls(body.get("outputs"))
            if not urls:
                return ProviderStatus(ProviderState.FAILED, error_code="provider_no_output",
                                      error_message="VibeDream reported completed without outputs", cost=cost)
            return ProviderStatus(state, progress=100, output_url=urls[0], cost=cost)
        if state is ProviderState.FAILED:
            message = _message(body) or f"VibeDream reported the prediction as {raw_state}"
            code = "provider_moderation" if _is_moderation(message) else "provider_failed"
            return ProviderStatus(state, error_code=code, error_message=message[:500], cost=cost)
        return ProviderStatus(state, eta_seconds=_eta_seconds(body.get("estimatedTime")), cost=cost)

    # --- callbacks ----------------------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float) -> CallbackHint:
        raise CallbackRejected("vibedream does not send callbacks")


# --- helpers ------------------------------------------------------------------------------


def _message(body: Any) -> str:
    """The error text of an undocumented body: `error` (string or `{message}`), `message`, `detail`."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    for text in (error, body.get("message"), body.get("detail")):
        if isinstance(text, str) and text.strip():
            return text.strip()
    return ""


def _http_error(response: httpx.Response, body: Any, *, status_call: bool) -> ProviderError:
    return http_status_error(NAME, response, _message(body), status_call=status_call,
                             moderation_words=_MODERATION_WORDS)


def _is_moderation(text: str) -> bool:
    return mentions(text, _MODERATION_WORDS)


def _output_urls(outputs: Any) -> list[str]:
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, list):
        return []
    urls = []
    for item in outputs:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and url.strip():
            urls.append(url.strip())
    return urls


def _cost(value: Any) -> dict[str, Any] | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return {"cents": value}
    return None


def _eta_seconds(value: Any) -> float | None:
    """`estimatedTime` such as "60-180s" -> 60: the earliest the result can be there."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0.0, float(value))
    match = _ETA.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    seconds = float(match.group(1))
    return seconds * 60 if (match.group(2) or "s").lower().startswith("m") else seconds
