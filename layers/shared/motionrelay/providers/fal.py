"""fal.ai queue adapter for `fal-ai/kling-video/v2.6/{standard,pro}/motion-control`
(providers.md section 6.2).

Wire format:
- `POST {queue}/fal-ai/kling-video/v2.6/{standard|pro}/motion-control[?fal_webhook=<url>]`
  (`Authorization: Key <FAL_KEY>`) `{image_url, video_url, character_orientation, prompt?,
  keep_original_sound}` -> `{request_id, response_url, status_url, cancel_url, ...}`.
- `GET {queue}/fal-ai/kling-video/requests/{id}/status` -> `{status: IN_QUEUE (queue_position)
  | IN_PROGRESS | COMPLETED, response_url, logs?, error?}`.
- `GET {queue}/fal-ai/kling-video/requests/{id}` -> the result `{video{url, content_type,
  file_name, file_size}}`, or the request's error (`{"detail": ...}` with a 4xx/5xx status).
- `PUT {queue}/fal-ai/kling-video/requests/{id}/cancel` -> 202 `CANCELLATION_REQUESTED`
  (only requests not yet started can be canceled), 400 `ALREADY_COMPLETED`.
- Webhooks: POST `{request_id, gateway_request_id, status: OK|ERROR, payload, error}` signed
  with Ed25519: headers `X-Fal-Webhook-Request-Id`, `-User-Id`, `-Timestamp`, `-Signature`
  (hex); message = request_id "\\n" user_id "\\n" timestamp "\\n" hex(sha256(raw body));
  public keys from the JWKS at `https://rest.alpha.fal.ai/.well-known/jwks.json` (rotated:
  any key of the set may have signed).

Tolerant readings where the docs are silent (written down as required):
- Status and result URLs are built from the app id (`fal-ai/kling-video`) and the request id,
  as fal's docs show them, rather than followed from the submit answer's `status_url` /
  `response_url`: our key is never sent to a URL read out of a response body.
- `queue_position` is the only progress fal reports: while queued, position N reads as
  progress max(1, 10 - N) % (it rises as the request moves up); IN_PROGRESS reports none.
- COMPLETED only says the request stopped. A COMPLETED status carrying `error` is a failure
  at once; otherwise the result is fetched (`result_request`). A result answer that is fal's
  own JSON error (`detail`) with a 4xx/5xx status is the request's failure (final: fal has
  already retried runner faults itself); 429 or a non-JSON answer (a proxy) is transient.
- The result's `video.url` is the output; a result without one fails with `provider_no_output`.
- A callback's task id is the *signed* `X-Fal-Webhook-Request-Id`; a body naming another
  request id is refused. The window is +-300 s (fal's "5 minutes").
- fal's model page lists no byte limits; the upstream model's 10 MB image / 100 MB video are
  used. `negative_prompt` is not in the input schema: not offered. Inputs go by URL only.
- Cost: fal's queue answers carry no price; none is reported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from motionrelay.domain.job import ProviderState, ProviderStatus
from motionrelay.providers.base import (
    UPSTREAM_LIMITS,
    CallbackHint,
    CallbackKeysStale,
    CallbackRejected,
    Capabilities,
    ProviderError,
    SubmitSpec,
    http_status_error,
    json_body,
    mentions,
    required_id,
)

NAME = "fal"
DEFAULT_BASE_URL = "https://queue.fal.run"
DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
APP_ID = "fal-ai/kling-video"
MODEL_PATHS = {"std": f"{APP_ID}/v2.6/standard/motion-control", "pro": f"{APP_ID}/v2.6/pro/motion-control"}
SIGNATURE_WINDOW_SECONDS = 300
MODERATION_WORDS = ("content policy", "nsfw", "moderation", "inappropriate", "safety", "flagged")

CAPABILITIES = Capabilities(
    callbacks=True,
    callback_auth="ed25519-jwks",
    inline_base64=False,
    qualities=frozenset({"std", "pro"}),
    prompt=True,
    negative_prompt=False,
    sound_control=True,
    progress=True,  # queue_position while queued
    **UPSTREAM_LIMITS,
)

_STATES = {"IN_QUEUE": ProviderState.QUEUED, "IN_PROGRESS": ProviderState.RUNNING}

# The provider secret's fields (MOTIONRELAY_FAL_<field>); JWKS_URL is optional (fal's by default).
CREDENTIALS = ("API_KEY", "JWKS_URL")


def from_credentials(base_url: str, credentials: Mapping[str, str]) -> FalAdapter:
    return FalAdapter(api_key=credentials["API_KEY"], base_url=base_url,
                      jwks_url=credentials.get("JWKS_URL", ""))


class FalAdapter:
    name = NAME
    capabilities = CAPABILITIES
    signs_callbacks = True

    def __init__(self, api_key: str, base_url: str = "", jwks_url: str = "") -> None:
        self._api_key = api_key
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._jwks_url = jwks_url or DEFAULT_JWKS_URL

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._api_key}"}

    def _request_url(self, task_id: str, suffix: str = "") -> str:
        return f"{self._base_url}/{APP_ID}/requests/{quote(task_id, safe='')}{suffix}"

    # --- submit -------------------------------------------------------------------------
    def build_submit(self, spec: SubmitSpec) -> httpx.Request:
        path = MODEL_PATHS.get(spec.quality)
        if path is None:
            raise ProviderError(NAME, "provider_validation_error", f"fal offers no {spec.quality!r} quality",
                                retryable=False)
        body: dict[str, Any] = {
            "image_url": spec.image_url,
            "video_url": spec.video_url,
            "character_orientation": spec.character_orientation,
            "keep_original_sound": spec.keep_original_sound,
        }
        if spec.prompt:
            body["prompt"] = spec.prompt
        params = {"fal_webhook": spec.callback_url} if spec.callback_url else None
        return httpx.Request("POST", f"{self._base_url}/{path}", params=params,
                             headers={**self._auth(), "Content-Type": "application/json"}, json=body)

    def parse_submit(self, response: httpx.Response) -> str:
        body = json_body(response)
        if not response.is_success:
            raise _error(response, body, status_call=False)
        return required_id(NAME, response, body, "request_id")

    # --- status -------------------------------------------------------------------------
    def build_status(self, task_id: str) -> httpx.Request:
        return httpx.Request("GET", self._request_url(task_id, "/status"), headers=self._auth())

    def result_request(self, response: httpx.Response) -> httpx.Request | None:
        """The result fetch a COMPLETED status needs (None for any other answer)."""
        body = json_body(response)
        if not response.is_success or not isinstance(body, dict) or body.get("status") != "COMPLETED":
            return None
        if body.get("error"):
            return None  # the status already says how it failed
        task_id = _task_of(response)
        return httpx.Request("GET", self._request_url(task_id), headers=self._auth()) if task_id else None

    def parse_status(self, response: httpx.Response) -> ProviderStatus:
        if response.request.url.path.endswith("/status"):
            return self._parse_status_answer(response)
        return self._parse_result(response)

    def _parse_status_answer(self, response: httpx.Response) -> ProviderStatus:
        body = json_body(response)
        if not response.is_success:
            raise _error(response, body, status_call=True)
        status = str(body.get("status", "")) if isinstance(body, dict) else ""
        if status == "COMPLETED":
            error = body.get("error")
            if error:
                return _failure(str(error), response.status_code)
            # Reached only when the caller did not fetch the result: poll again.
            return ProviderStatus(ProviderState.RUNNING, progress=99)
        state = _STATES.get(status)
        if state is None:
            raise ProviderError(NAME, "provider_bad_response", f"unknown status {status!r}",
                                retryable=True, http_status=response.status_code)
        if state is ProviderState.QUEUED:
            position = body.get("queue_position")
            progress = None
            if isinstance(position, int) and not isinstance(position, bool) and position >= 0:
                progress = max(1, 10 - position)
            return ProviderStatus(state, progress=progress)
        return ProviderStatus(state)

    def _parse_result(self, response: httpx.Response) -> ProviderStatus:
        body = json_body(response)
        if not response.is_success:
            if response.status_code == 429 or not isinstance(body, dict) or "detail" not in body:
                raise _error(response, body, status_call=True)
            if response.status_code == 404:
                raise _error(response, body, status_call=True)
            return _failure(_detail(body.get("detail")), response.status_code)
        video = body.get("video") if isinstance(body, dict) else None
        url = video.get("url") if isinstance(video, dict) else None
        if not isinstance(url, str) or not url.strip():
            return ProviderStatus(ProviderState.FAILED, error_code="provider_no_output",
                                  error_message="fal reported completion without a video URL")
        return ProviderStatus(ProviderState.SUCCEEDED, progress=100, output_url=url.strip())

    # --- cancel -------------------------------------------------------------------------
    def build_cancel(self, task_id: str) -> httpx.Request:
        return httpx.Request("PUT", self._request_url(task_id, "/cancel"), headers=self._auth())

    def parse_cancel(self, response: httpx.Response) -> bool:
        """Whether fal took the cancellation (only requests still queued can be canceled)."""
        body = json_body(response)
        return response.is_success and (not isinstance(body, dict)
                                        or body.get("status") in (None, "CANCELLATION_REQUESTED"))

    # --- callbacks ----------------------------------------------------------------------
    def build_callback_keys_request(self) -> httpx.Request:
        return httpx.Request("GET", self._jwks_url, headers={"Accept": "application/json"})

    def parse_callback_keys(self, response: httpx.Response) -> tuple[Any, ...]:
        """The Ed25519 public keys of fal's JWKS (other key types are skipped)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        body = json_body(response)
        if not response.is_success or not isinstance(body, dict) or not isinstance(body.get("keys"), list):
            raise ProviderError(NAME, "provider_bad_response", "JWKS could not be read",
                                retryable=True, http_status=response.status_code)
        keys = []
        for jwk in body["keys"]:
            if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                continue
            try:
                raw = base64.urlsafe_b64decode(str(jwk.get("x", "")) + "==")
                keys.append(Ed25519PublicKey.from_public_bytes(raw))
            except (ValueError, binascii.Error):
                continue
        return tuple(keys)

    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float,
                        keys: Sequence[Any] | None = None) -> CallbackHint:
        from cryptography.exceptions import InvalidSignature

        lowered = {k.lower(): v for k, v in headers.items()}
        request_id = lowered.get("x-fal-webhook-request-id", "").strip()
        user_id = lowered.get("x-fal-webhook-user-id", "").strip()
        timestamp = lowered.get("x-fal-webhook-timestamp", "").strip()
        signature_hex = lowered.get("x-fal-webhook-signature", "").strip()
        if not (request_id and user_id and timestamp and signature_hex):
            raise CallbackRejected("missing X-Fal-Webhook-* signature headers")
        try:
            sent_at = int(timestamp)
            signature = bytes.fromhex(signature_hex)
        except ValueError as exc:
            raise CallbackRejected("malformed X-Fal-Webhook-Timestamp or -Signature") from exc
        if abs(now - sent_at) > SIGNATURE_WINDOW_SECONDS:
            raise CallbackRejected("X-Fal-Webhook-Timestamp outside the accepted window")
        message = "\n".join((request_id, user_id, timestamp, hashlib.sha256(raw_body).hexdigest())).encode()
        verified = False
        for key in keys or ():
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            verified = True
            break
        if not verified:
            raise CallbackKeysStale("no key of fal's JWKS verifies the signature")
        try:
            body = json.loads(raw_body)
        except (ValueError, RecursionError) as exc:
            raise CallbackRejected("callback body is not JSON") from exc
        named = body.get("request_id") if isinstance(body, dict) else None
        if named is not None and named != request_id:
            raise CallbackRejected("the body names another request than the signed header")
        return CallbackHint(task_id=request_id)


# ----------------------------------------------------------------------- helpers


def _task_of(response: httpx.Response) -> str | None:
    """The request id of a status answer, from its own request's URL (`.../requests/{id}/status`)."""
    parts = response.request.url.path.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-1] == "status" and parts[-3] == "requests":
        return parts[-2]
    return None


def _detail(detail: Any) -> str:
    """fal's `detail`: a string, or FastAPI's list of `{loc, msg, type}`."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = [str(d.get("msg") or d) if isinstance(d, dict) else str(d) for d in detail]
        return "; ".join(parts)
    return json.dumps(detail)[:500] if detail is not None else ""


def _failure(message: str, status: int) -> ProviderStatus:
    message = message or f"fal reported the request as failed (HTTP {status})"
    code = "provider_moderation" if mentions(message, MODERATION_WORDS) else "provider_failed"
    return ProviderStatus(ProviderState.FAILED, error_code=code, error_message=message[:1000])


def _error(response: httpx.Response, body: Any, *, status_call: bool) -> ProviderError:
    message = _detail(body.get("detail")) if isinstance(body, dict) else ""
    return http_status_error(NAME, response, message, status_call=status_call,
                             moderation_words=MODERATION_WORDS)
