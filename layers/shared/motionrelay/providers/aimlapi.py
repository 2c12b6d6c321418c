"""AI/ML API adapter for Kling 2.6 Motion Control (providers.md section 2; seeds/001).

Wire format:
- `POST /v2/video/generations` (Bearer) `{model, image_url, video_url, character_orientation,
  keep_audio, prompt?, mode?}` -> `{id, status}`.
- `GET /v2/video/generations?generation_id=<id>` -> `{id, status, video{url}|null,
  error{name, message}|null, meta{usage{credits_used, usd_spent}}|null}`; statuses
  queued/generating/completed/error.
- Errors: HTTP status plus `{message, path, requestId, statusCode, timestamp}`. 400 body
  validation, 401 bad key, 403 out of credits, 404, 429 rate/concurrency limit, 500/502/503/504.
- No callbacks (none documented for video models): poll only.

Two model schemas exist (providers.md 2.1), chosen with env `MOTIONRELAY_AIMLAPI_MODEL`:
- `klingai/video-v2-6-motion-control` (Jun 2026 schema, the default): `mode` std|pro.
- `klingai/video-v2-6-pro-motion-control` (Jan 2026 schema, the provider page): no `mode`,
  Pro only, so the capabilities offer only "pro" and no `mode` is sent.
Any other id is sent verbatim with the newer schema (a future rename needs no code change).

Tolerant readings where the docs disagree or are silent (written down as required):
- `character_orientation` defaults differ between the schemas (image vs video) and
  `keep_audio` defaults to true: both are always sent explicitly.
- `waiting` is read as queued (the docs' sample client checks for it; the enum lacks it).
- Errors are classified by HTTP status; a 2xx whose body carries an error `statusCode`
  (the docs' example has it as the string "429") is classified by that code. `message`
  may be a string or a list of strings (NestJS-style validation); both are read.
- 403 is "out of credits" per the 4xx page; a 403 whose message does not mention credits or
  billing is reported as provider_forbidden. Both are retryable on submit (failover).
- A 400 whose message names our own model id means the live API does not accept that id
  (the open question in providers.md): a configuration fault, retryable so failover moves on,
  instead of a final validation error for the user's job.
- A 500 mentioning maintenance is provider_unavailable, like 503.
- `meta.usage` is documented with `credits_used` (fetch schema) and `usd_spent` (providers.md):
  cost records whichever is present, in any state.
- The output URL is `video.url`; a bare string `video` is accepted too.
- Byte limits are not documented by AI/ML API: 10 MB image (the upstream Kling limit every
  reseller repeats) and 100 MB video (what the official Kling API and Kie document for the
  same model; AI/ML API forwards the file upstream, so a larger one could not be used anyway).
- The schema states no prompt length; the upstream model's 2500 characters applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import httpx

from motionrelay.domain.job import ProviderState, ProviderStatus
from motionrelay.providers.base import (
    HTTP_CODE_NAMES,
    CallbackHint,
    CallbackRejected,
    Capabilities,
    ProviderError,
    SubmitSpec,
    http_status_retryable,
    json_body,
    mentions,
    retry_after_seconds,
)

NAME = "aimlapi"
DEFAULT_BASE_URL = "https://api.aimlapi.com"
MODEL_ENV = "MOTIONRELAY_AIMLAPI_MODEL"
MODEL = "klingai/video-v2-6-motion-control"  # newer schema: `mode` std|pro
MODEL_PRO_ONLY = "klingai/video-v2-6-pro-motion-control"  # older schema: no `mode`, Pro only
GENERATIONS_PATH = "/v2/video/generations"
MB = 1024 * 1024

CAPABILITIES = Capabilities(
    callbacks=False,
    callback_auth="none",
    inline_base64=True,  # "a Base64-encoded local image", "a data URI containing a video"
    max_image_bytes=10 * MB,
    max_video_bytes=100 * MB,
    max_video_seconds_image_orientation=10,
    max_video_seconds_video_orientation=30,
    min_video_seconds=3,
    qualities=frozenset({"std", "pro"}),
    prompt=True,
    negative_prompt=False,  # not in the schema
    sound_control=True,  # keep_audio
    progress=False,
)
CAPABILITIES_PRO_ONLY = dataclasses.replace(CAPABILITIES, qualities=frozenset({"pro"}))

_STATES = {
    "queued": ProviderState.QUEUED,
    "waiting": ProviderState.QUEUED,
    "generating": ProviderState.RUNNING,
    "completed": ProviderState.SUCCEEDED,
    "error": ProviderState.FAILED,
}
_CODE_NAMES = {**HTTP_CODE_NAMES, 403: "provider_insufficient_credits"}  # 403 = out of credits here
# On submit these are account or configuration states another provider does not share.
_RETRYABLE_SUBMIT = {401, 403, 404}
_CREDIT_WORDS = ("credit", "balance", "billing", "top up", "payment")
_MODERATION_WORDS = ("moderation", "content policy", "inappropriate", "nsfw", "sensitive", "prohibited",
                     "violat", "safety")


# The provider secret's fields this adapter needs (MOTIONRELAY_AIMLAPI_<field>, env first, then the
# secret); the registry reads them. MODEL is optional: a deployment may pin another model id.
CREDENTIALS = ("API_KEY", "MODEL")


def from_credentials(base_url: str, credentials: Mapping[str, str]) -> AimlapiAdapter:
    return AimlapiAdapter(api_key=credentials["API_KEY"], base_url=base_url,
                          model=credentials.get("MODEL") or MODEL)


class AimlapiAdapter:
    name = NAME

    def __init__(self, api_key: str, base_url: str = "", model: str = MODEL) -> None:
        self._api_key = api_key
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.model = model.strip() or MODEL
        # The older id is Pro only and takes no `mode`; everything else speaks the newer schema.
        self.sends_mode = self.model != MODEL_PRO_ONLY
        self.capabilities = CAPABILITIES if self.sends_mode else CAPABILITIES_PRO_ONLY

    @property
    def signs_callbacks(self) -> bool:
        return False

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"}

    # --- submit -------------------------------------------------------------------------
    def build_submit(self, spec: SubmitSpec) -> httpx.Request:
        if spec.quality not in self.capabilities.qualities:
            # Routing checks qualities first; this guards jobs placed after a model switch,
            # which would otherwise be rendered (and billed) at a tier nobody asked for.
            raise ProviderError(NAME, "provider_quality_unavailable",
                                f"{self.model} does not offer quality {spec.quality!r}", retryable=True)
        body: dict[str, Any] = {
            "model": self.model,
            "image_url": spec.image_url,
            "video_url": spec.video_url,
            "character_orientation": spec.character_orientation,
            "keep_audio": spec.keep_original_sound,
        }
        if self.sends_mode:
            body["mode"] = spec.quality
        if spec.prompt:
            body["prompt"] = spec.prompt
        url = f"{self._base_url}{GENERATIONS_PATH}"
        return httpx.Request("POST", url, headers=self._headers(), json=body)

    def parse_submit(self, response: httpx.Response) -> str:
        body = self._success_body(response)
        task_id = body.get("id") or body.get("generation_id")
        if not isinstance(task_id, str) or not task_id.strip():
            raise ProviderError(NAME, "provider_bad_response", "generation request returned no id",
                                retryable=True, http_status=response.status_code)
        return task_id.strip()

    # --- status -------------------------------------------------------------------------
    def build_status(self, task_id: str) -> httpx.Request:
        return httpx.Request(
            "GET", f"{self._base_url}{GENERATIONS_PATH}", params={"generation_id": task_id},
            headers={"Authorization": f"Bearer {self._api_key}"},
        )

    def parse_status(self, response: httpx.Response) -> ProviderStatus:
        body = self._success_body(response, status_call=True)
        raw_status = str(body.get("status") or "").strip().lower()
        state = _STATES.get(raw_status)
        if state is None:
            raise ProviderError(NAME, "provider_bad_response", f"unknown status {body.get('status')!r}",
                                retryable=True, http_status=response.status_code)
        cost = _cost(body.get("meta"))
        if state is ProviderState.SUCCEEDED:
            url = _video_url(body.get("video"))
            if not url:
                # A success without a URL cannot be transferred: treat as a provider failure.
                return ProviderStatus(ProviderState.FAILED, error_code="provider_no_output",
                                      error_message="AI/ML API reported completed without video.url",
                                      cost=cost)
            return ProviderStatus(state, progress=100, output_url=url, cost=cost)
        if state is ProviderState.FAILED:
            message = _error_text(body.get("error")) or "AI/ML API reported the generation as failed"
            code = "provider_moderation" if mentions(message, _MODERATION_WORDS) else "provider_failed"
            return ProviderStatus(state, error_code=code, error_message=message[:1000], cost=cost)
        return ProviderStatus(state, cost=cost)

    # --- callbacks ----------------------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float) -> CallbackHint:
        raise CallbackRejected("aimlapi does not send callbacks")

    # --- shared -------------------------------------------------------------------------
    def _success_body(self, response: httpx.Response, status_call: bool = False) -> dict[str, Any]:
        """The JSON object of a successful answer; raises a classified ProviderError otherwise."""
        body = json_body(response)
        body_code = _int(body.get("statusCode")) if isinstance(body, dict) else None
        if response.is_success and not (body_code and body_code >= 400):
            if not isinstance(body, dict):
                raise ProviderError(NAME, "provider_bad_response", "answer is not a JSON object",
                                    retryable=True, http_status=response.status_code)
            return body
        effective = response.status_code if not response.is_success else body_code or 500
        message = _message(body) or f"HTTP {response.status_code}"
        raise ProviderError(
            NAME, self._code(effective, message), message[:500],
            retryable=self._retryable(effective, message, status_call),
            http_status=response.status_code, retry_after=retry_after_seconds(response),
        )

    def _code(self, status: int, message: str) -> str:
        if status == 400 and self._model_rejected(message):
            return "provider_model_rejected"
        if status in (400, 422) and mentions(message, _MODERATION_WORDS):
            return "provider_moderation"
        if status == 403 and not mentions(message, _CREDIT_WORDS):
            return "provider_forbidden"
        if status == 500 and "maintenance" in message.lower():
            return "provider_unavailable"
        return _CODE_NAMES.get(status, f"provider_code_{status}")

    def _retryable(self, status: int, message: str, status_call: bool) -> bool:
        if status_call:
            # An unknown generation is final; anything else is worth another poll.
            return status != 404
        if status == 400 and self._model_rejected(message):
            return True
        return status in _RETRYABLE_SUBMIT or http_status_retryable(status)

    def _model_rejected(self, message: str) -> bool:
        return self.model.lower() in message.lower()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    message = body.get("message") or body.get("error") or ""
    if isinstance(message, list):
        return "; ".join(str(m) for m in message if m)
    if isinstance(message, dict):
        return _error_text(message)
    return str(message).strip()


def _error_text(error: Any) -> str:
    """`error{name, message}` as one line; a bare string is accepted too."""
    if isinstance(error, str):
        return error.strip()
    if not isinstance(error, dict):
        return ""
    name, message = str(error.get("name") or "").strip(), str(error.get("message") or "").strip()
    return f"{name}: {message}" if name and message else name or message


def _video_url(video: Any) -> str | None:
    url = video.get("url") if isinstance(video, dict) else video
    return url.strip() if isinstance(url, str) and url.strip() else None


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cost(meta: Any) -> dict[str, Any] | None:
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return None
    cost = {key: value for key, value in (("usd", _number(usage.get("usd_spent"))),
                                          ("credits", _number(usage.get("credits_used"))))
            if value is not None}
    return cost or None
