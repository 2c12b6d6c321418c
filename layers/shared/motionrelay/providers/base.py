"""The small interface every provider adapter implements.

Adapters are sans-I/O: they build `httpx.Request` objects and parse `httpx.Response`
objects. The caller (API, poller, webhook, sandbox contract tests, benchmarks) owns the
client, so the same adapter serves sync and async code alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from motionrelay.domain.capabilities import Capabilities  # noqa: F401 - adapters declare theirs with it
from motionrelay.domain.job import ProviderStatus

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class SubmitSpec:
    """A normalised request, with inputs already staged and reachable by URL."""

    image_url: str
    video_url: str
    character_orientation: str
    quality: str
    prompt: str | None
    negative_prompt: str | None
    keep_original_sound: bool
    callback_url: str | None
    # Our job id (Kling's `external_task_id`: a submit whose answer was lost can be looked up
    # by it) and the job's deadline as epoch seconds (Replicate's `Cancel-After`).
    job_id: str | None = None
    deadline_at: float | None = None


class ProviderError(Exception):
    """A provider refused or failed a call. `retryable` decides retry/failover vs final."""

    def __init__(self, provider: str, code: str, message: str, *, retryable: bool,
                 http_status: int | None = None, retry_after: float | None = None,
                 ambiguous: bool = False) -> None:
        super().__init__(f"{provider}: {code}: {message}")
        self.provider = provider
        self.code = code
        self.message = message
        self.retryable = retryable
        self.http_status = http_status
        self.retry_after = retry_after
        # A submit that was sent and got no definite answer: it may have been accepted.
        self.ambiguous = ambiguous


class CallbackRejected(Exception):
    """A callback failed verification; the webhook answers 401 and writes nothing."""


class CallbackKeysStale(CallbackRejected):
    """No key the caller passed verified the signature (or none was passed): the provider may
    have rotated its keys. The caller fetches them again (`build_callback_keys_request`) and
    retries once; a second failure is a plain rejection."""


@dataclass(frozen=True)
class CallbackHint:
    """What a verified callback tells us: only which task to re-fetch."""

    task_id: str


class ProviderAdapter(Protocol):
    """One provider's wire format. Sans-I/O: every method builds or parses, none sends.

    Error contract: `build_*`, `parse_*` and `submit_details` raise `ProviderError` only (a
    request the provider cannot take, such as a quality it does not offer, is
    `ProviderError(..., "provider_validation_error", ..., retryable=False)`), never
    ValueError or another exception: callers catch ProviderError (and httpx's errors from
    sending) and treat anything else as a bug. `verify_callback` raises `CallbackRejected`
    only."""

    name: str
    capabilities: Capabilities

    @property
    def signs_callbacks(self) -> bool: ...

    def build_submit(self, spec: SubmitSpec) -> httpx.Request: ...

    def parse_submit(self, response: httpx.Response) -> str: ...

    def build_status(self, task_id: str) -> httpx.Request: ...

    def parse_status(self, response: httpx.Response) -> ProviderStatus: ...

    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes, now: float) -> CallbackHint: ...

    # Optional: `submit_details(response) -> ProviderStatus | None` for providers whose submit
    # answer carries cost or an ETA (VibeDream); the gateway records them when present.
    #
    # Optional, for providers that sign callbacks with keys fetched from them (fal's JWKS,
    # Replicate's webhook secret): `build_callback_keys_request() -> httpx.Request` and
    # `parse_callback_keys(response) -> tuple` (opaque keys); `verify_callback(..., keys=...)`
    # then takes them and raises `CallbackKeysStale` when none verifies. The caller fetches and
    # caches them (callback_keys.py): adapters do no I/O.
    #
    # Optional: `result_request(status_response) -> httpx.Request | None` for providers whose
    # status answer says "done" without the result (fal): the caller sends it and passes that
    # answer to `parse_status` instead.
    #
    # Optional: `build_cancel(task_id) -> httpx.Request` / `parse_cancel(response) -> bool`
    # (fal, Replicate): the gateway asks the provider to stop a canceled job's task.
    #
    # Optional: `build_lookup(job_id) -> httpx.Request` / `parse_lookup(response) -> str | None`
    # (Kling's external_task_id): after an ambiguous submit, the task the provider made for this
    # job, if any.



def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds (only the delta-seconds form; HTTP dates are rare here)."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def http_status_retryable(status: int) -> bool:
    return status == 408 or status == 429 or status >= 500


# The upstream model's own input limits (providers.md section 0; the official Kling API's),
# for platforms that document none of their own (fal, Replicate, Kling itself).
UPSTREAM_LIMITS: dict[str, Any] = {
    "max_image_bytes": 10 * 1024 * 1024,
    "max_video_bytes": 100 * 1024 * 1024,
    "max_video_seconds_image_orientation": 10,
    "max_video_seconds_video_orientation": 30,
    "min_video_seconds": 3,
    "video_containers": frozenset({"mp4", "mov"}),
}


# --- parsing helpers shared by the adapters ------------------------------------------------

# What an HTTP status means when a provider documents no error codes of its own.
HTTP_CODE_NAMES = {
    400: "provider_validation_error",
    401: "provider_unauthorized",
    402: "provider_insufficient_credits",
    403: "provider_forbidden",
    404: "provider_not_found",
    408: "provider_timeout",
    422: "provider_validation_error",
    429: "provider_rate_limited",
    500: "provider_error",
    502: "provider_error",
    503: "provider_unavailable",
    504: "provider_timeout",
}
# On submit these are account/configuration states of one provider, not faults of the
# request: another provider may serve the job, so they fail over (as do 408/429/5xx).
RETRYABLE_SUBMIT_STATUSES = frozenset({401, 402, 403, 404})


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or None when it is not JSON (a proxy's HTML page, an empty body, or
    nesting too deep to parse: RecursionError)."""
    try:
        return response.json()
    except (ValueError, RecursionError):
        return None


def mentions(text: str, words: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in words)


def finite_number(value: Any) -> float | None:
    """A number from a number or a numeric string; booleans, NaN and infinities are not."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def percent(value: Any) -> int | None:
    number = finite_number(value)
    return None if number is None else max(0, min(100, round(number)))


def seconds(value: Any) -> float | None:
    number = finite_number(value)
    return None if number is None else max(0.0, number)


def http_status_error(provider: str, response: httpx.Response, message: str, *, status_call: bool,
                      code_names: Mapping[int, str] = HTTP_CODE_NAMES,
                      moderation_words: tuple[str, ...] = (),
                      retryable_submit: frozenset[int] = RETRYABLE_SUBMIT_STATUSES) -> ProviderError:
    """A ProviderError classified by HTTP status alone (providers without error codes).
    On a status call only an unknown task (404) is final; on submit, see RETRYABLE_SUBMIT."""
    status = response.status_code
    message = message or f"HTTP {status}"
    code = code_names.get(status, f"provider_code_{status}")
    if status in (400, 422) and moderation_words and mentions(message, moderation_words):
        code = "provider_moderation"
    if status_call:
        retryable = status != 404
    else:
        retryable = status in retryable_submit or http_status_retryable(status)
    return ProviderError(provider, code, message[:500], retryable=retryable, http_status=status,
                         retry_after=retry_after_seconds(response))


def required_id(provider: str, response: httpx.Response, body: Any, key: str) -> str:
    """A submit answer's task id (`body[key]`, a non-empty string), else a retryable
    `provider_bad_response`: the provider answered success without saying which task it made."""
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ProviderError(provider, "provider_bad_response", f"submit answer has no {key}",
                            retryable=True, http_status=response.status_code)
    return value.strip()
