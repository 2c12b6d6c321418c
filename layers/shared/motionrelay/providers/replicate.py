"""Replicate adapter for `kwaivgi/kling-v2.6-motion-control` (providers.md section 6.3).

Wire format:
- `POST /v1/models/kwaivgi/kling-v2.6-motion-control/predictions` (`Authorization: Bearer`,
  `Cancel-After: <N>s`) `{input{image, video, mode: std|pro, character_orientation,
  keep_original_sound, prompt?}, webhook?, webhook_events_filter?}` -> 201 the prediction
  `{id, status: starting, urls{get, cancel}, ...}`.
- `GET /v1/predictions/{id}` -> the prediction: `status` starting | processing | succeeded |
  failed | canceled | aborted, `output` (the video URL), `error`, `logs`, `metrics{predict_time}`,
  `data_removed`.
- `POST /v1/predictions/{id}/cancel` -> the prediction (status `canceled` once it took).
- Webhooks: POST of the prediction, signed as Standard Webhooks: `webhook-id`,
  `webhook-timestamp` (seconds), `webhook-signature` (space-separated `v1,<base64>`) =
  HMAC-SHA256 over `{id}.{timestamp}.{raw body}` with the account's secret from
  `GET /v1/webhooks/default/secret` (`{"key": "whsec_<base64>"}`).

Tolerant readings where the docs are silent (written down as required):
- Outputs are deleted an hour after the prediction ends: a success queues the transfer at
  once (`provider_succeeded` does), nothing to add here; `data_removed: true` or a success
  without an output is `provider_no_output`.
- `output` is read as a URL string, or the first string of a list (community code shows both).
- `webhook_events_filter` is `["start", "completed"]`: `start` is a progress hint (the job is
  running), `completed` is the one Replicate retries. Both are re-fetched anyway.
- `Cancel-After` is the time left until the job's deadline, in whole seconds (at least 1 s):
  Replicate then aborts (not charged) or cancels the prediction itself if we never collect it.
- Progress: the model's logs are free text; the last `NN%` in them is read as progress.
- Cost: `metrics.predict_time` (seconds of compute, what Replicate bills by for this model).
- `aborted` and `canceled` are failures (`provider_canceled`); a failure whose error mentions
  NSFW / flagged / content policy is `provider_moderation`.
- Error bodies are `{"detail": ..., "title"?, "status"?}`; 402 (no credit), 401/403/404 fail
  over like the other adapters; 422 (invalid input) is final.
- The signature window is +-300 s (Standard Webhooks' default); the Standard Webhooks
  reference library computes the signature, the window is checked here against `now`.
- Input limits are not documented on the model page: the upstream model's are used.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
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
    finite_number,
    http_status_error,
    json_body,
    mentions,
    required_id,
)

NAME = "replicate"
DEFAULT_BASE_URL = "https://api.replicate.com"
MODEL = "kwaivgi/kling-v2.6-motion-control"
EVENTS = ["start", "completed"]
SIGNATURE_WINDOW_SECONDS = 300
MODERATION_WORDS = ("nsfw", "flagged", "content policy", "moderation", "inappropriate", "safety")
_PERCENT = re.compile(r"(\d{1,3})%")

CAPABILITIES = Capabilities(
    callbacks=True,
    callback_auth="standard-webhooks",
    inline_base64=False,
    qualities=frozenset({"std", "pro"}),
    prompt=True,
    negative_prompt=False,
    sound_control=True,
    progress=True,  # from the logs, when the model prints a percentage
    **UPSTREAM_LIMITS,
)

_STATES = {
    "starting": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "succeeded": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "canceled": ProviderState.FAILED,
    "aborted": ProviderState.FAILED,
}

# The provider secret's fields this adapter needs (MOTIONRELAY_REPLICATE_<field>).
CREDENTIALS = ("API_KEY",)


def from_credentials(base_url: str, credentials: Mapping[str, str]) -> ReplicateAdapter:
    return ReplicateAdapter(api_key=credentials["API_KEY"], base_url=base_url)


class ReplicateAdapter:
    name = NAME
    capabilities = CAPABILITIES
    signs_callbacks = True

    def __init__(self, api_key: str, base_url: str = "", clock: Callable[[], float] = time.time) -> None:
        self._api_key = api_key
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._clock = clock

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _prediction_url(self, task_id: str, suffix: str = "") -> str:
        return f"{self._base_url}/v1/predictions/{quote(task_id, safe='')}{suffix}"

    # --- submit -------------------------------------------------------------------------
    def build_submit(self, spec: SubmitSpec) -> httpx.Request:
        if spec.quality not in CAPABILITIES.qualities:
            raise ProviderError(NAME, "provider_validation_error",
                                f"Replicate offers no {spec.quality!r} mode", retryable=False)
        task_input: dict[str, Any] = {
            "image": spec.image_url,
            "video": spec.video_url,
            "mode": spec.quality,
            "character_orientation": spec.character_orientation,
            "keep_original_sound": spec.keep_original_sound,
        }
        if spec.prompt:
            task_input["prompt"] = spec.prompt
        body: dict[str, Any] = {"input": task_input}
        if spec.callback_url:
            body["webhook"] = spec.callback_url
            body["webhook_events_filter"] = EVENTS
        headers = {**self._auth(), "Content-Type": "application/json"}
        if spec.deadline_at is not None:
            headers["Cancel-After"] = f"{max(1, math.floor(spec.deadline_at - self._clock()))}s"
        return httpx.Request("POST", f"{self._base_url}/v1/models/{MODEL}/predictions", headers=headers,
                             json=body)

    def parse_submit(self, response: httpx.Response) -> str:
        body = json_body(response)
        if not response.is_success:
            raise _error(response, body, status_call=False)
        return required_id(NAME, response, body, "id")

    # --- status -------------------------------------------------------------------------
    def build_status(self, task_id: str) -> httpx.Request:
        return httpx.Request("GET", self._prediction_url(task_id), headers=self._auth())

    def parse_status(self, response: httpx.Response) -> ProviderStatus:
        body = json_body(response)
        if not response.is_success:
            raise _error(response, body, status_call=True)
        if not isinstance(body, dict):
            raise ProviderError(NAME, "provider_bad_response", "prediction is not a JSON object",
                                retryable=True, http_status=response.status_code)
        status = str(body.get("status", ""))
        state = _STATES.get(status)
        if state is None:
            raise ProviderError(NAME, "provider_bad_response", f"unknown status {status!r}",
                                retryable=True, http_status=response.status_code)
        cost = _cost(body.get("metrics"))
        if state is ProviderState.SUCCEEDED:
            url = _output_url(body.get("output"))
            if not url or body.get("data_removed"):
                return ProviderStatus(ProviderState.FAILED, error_code="provider_no_output", cost=cost,
                                      error_message="Replicate reported success without an output "
                                                    "(or its output was already removed)")
            return ProviderStatus(state, progress=100, output_url=url, cost=cost)
        if state is ProviderState.FAILED:
            error = str(body.get("error") or "").strip()
            if status in ("canceled", "aborted"):
                message = f"Replicate {status} the prediction" + (f": {error}" if error else "")
                return ProviderStatus(state, error_code="provider_canceled", error_message=message, cost=cost)
            code = "provider_moderation" if mentions(error, MODERATION_WORDS) else "provider_failed"
            return ProviderStatus(state, error_code=code, cost=cost,
                                  error_message=(error or "Replicate reported a failure")[:1000])
        running = state is ProviderState.RUNNING
        return ProviderStatus(state, progress=_log_progress(body.get("logs")) if running else None)

    # --- cancel -------------------------------------------------------------------------
    def build_cancel(self, task_id: str) -> httpx.Request:
        return httpx.Request("POST", self._prediction_url(task_id, "/cancel"), headers=self._auth())

    def parse_cancel(self, response: httpx.Response) -> bool:
        body = json_body(response)
        return response.is_success and (not isinstance(body, dict)
                                        or body.get("status") in (None, "canceled"))

    # --- callbacks ----------------------------------------------------------------------
    def build_callback_keys_request(self) -> httpx.Request:
        return httpx.Request("GET", f"{self._base_url}/v1/webhooks/default/secret", headers=self._auth())

    def parse_callback_keys(self, response: httpx.Response) -> tuple[bytes, ...]:
        """The account's webhook signing secret, decoded (`whsec_` + base64)."""
        body = json_body(response)
        key = body.get("key") if isinstance(body, dict) and response.is_success else None
        if not isinstance(key, str) or not key.startswith("whsec_"):
            raise ProviderError(NAME, "provider_bad_response", "webhook signing secret could not be read",
                                retryable=True, http_status=response.status_code)
        try:
            secret = base64.b64decode(key.removeprefix("whsec_") + "==")
        except (ValueError, binascii.Error) as exc:
            raise ProviderError(NAME, "provider_bad_response", "webhook signing secret is not base64",
                                retryable=True, http_status=response.status_code) from exc
        return (secret,) if secret else ()

    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float,
                        keys: Sequence[bytes] | None = None) -> CallbackHint:
        from standardwebhooks import Webhook

        lowered = {k.lower(): v for k, v in headers.items()}
        msg_id = lowered.get("webhook-id", "").strip()
        timestamp = lowered.get("webhook-timestamp", "").strip()
        signatures = lowered.get("webhook-signature", "").split()
        if not (msg_id and timestamp and signatures):
            raise CallbackRejected("missing webhook-id, webhook-timestamp or webhook-signature")
        try:
            sent_at = int(timestamp)
            text = raw_body.decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CallbackRejected("malformed webhook-timestamp or body") from exc
        if abs(now - sent_at) > SIGNATURE_WINDOW_SECONDS:
            raise CallbackRejected("webhook-timestamp outside the accepted window")
        presented = [_b64(sig.split(",", 1)[1]) for sig in signatures if sig.startswith("v1,")]
        verified = False
        for secret in keys or ():
            expected = _b64(Webhook(secret).sign(msg_id, datetime.fromtimestamp(sent_at, UTC), text)[3:])
            if any(sig is not None and hmac.compare_digest(expected or b"", sig) for sig in presented):
                verified = True
                break
        if not verified:
            raise CallbackKeysStale("no webhook signing secret verifies the signature")
        try:
            body = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise CallbackRejected("callback body is not JSON") from exc
        task_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(task_id, str) or not task_id.strip():
            raise CallbackRejected("callback names no prediction id")
        return CallbackHint(task_id=task_id.strip())


# ----------------------------------------------------------------------- helpers


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


def _output_url(output: Any) -> str | None:
    if isinstance(output, list):
        output = next((o for o in output if isinstance(o, str) and o.strip()), None)
    return output.strip() if isinstance(output, str) and output.strip() else None


def _cost(metrics: Any) -> dict[str, Any] | None:
    seconds = finite_number(metrics.get("predict_time")) if isinstance(metrics, dict) else None
    return {"predict_seconds": round(seconds, 3)} if seconds is not None else None


def _log_progress(logs: Any) -> int | None:
    if not isinstance(logs, str):
        return None
    found = _PERCENT.findall(logs[-2000:])
    return min(99, int(found[-1])) if found else None


def _error(response: httpx.Response, body: Any, *, status_call: bool) -> ProviderError:
    message = ""
    if isinstance(body, dict):
        detail = body.get("detail")
        message = detail if isinstance(detail, str) else json.dumps(detail)[:500] if detail else ""
        message = message or str(body.get("title") or "")
    return http_status_error(NAME, response, message, status_call=status_call,
                             moderation_words=MODERATION_WORDS)
