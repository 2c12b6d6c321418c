"""Parsing and checking `POST /v1/jobs` bodies (architecture.md, HTTP API v1).

Every refusal names the field and says what to change; nothing is written before this passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from motionrelay.errors import InvalidRequest, ProviderCannotServe
from motionrelay.settings import PROVIDERS

MAX_PROMPT_CHARS = 2500
MAX_METADATA_BYTES = 4096
ORIENTATIONS = ("image", "video")
QUALITIES = ("std", "pro")
_FIELDS = {
    "image", "video", "character_orientation", "quality", "prompt", "negative_prompt",
    "keep_original_sound", "provider", "webhook_url", "metadata",
}


@dataclass(frozen=True)
class JobRequest:
    image: str
    video: str
    character_orientation: str = "image"
    quality: str = "pro"
    prompt: str | None = None
    negative_prompt: str | None = None
    keep_original_sound: bool = True
    provider: str | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _string(body: dict, name: str, *, required: bool = False, max_len: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"'{name}' is required.", field=name)
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.", field=name)
    if required and not value.strip():
        raise InvalidRequest(f"'{name}' must not be empty.", field=name)
    if max_len is not None and len(value) > max_len:
        raise InvalidRequest(f"'{name}' is {len(value)} characters; the limit is {max_len}.", field=name)
    return value


def _choice(body: dict, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = _string(body, name)
    if value is None:
        return default
    if value not in choices:
        raise InvalidRequest(f"'{name}' must be one of: {', '.join(choices)}.", field=name)
    return value


def parse_job_request(raw_body: str | bytes | None) -> JobRequest:
    if not raw_body:
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown field '{unknown[0]}'.", field=unknown[0])

    keep_sound = body.get("keep_original_sound", True)
    if not isinstance(keep_sound, bool):
        raise InvalidRequest("'keep_original_sound' must be true or false.", field="keep_original_sound")
    metadata = body.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be a JSON object.", field="metadata")
    if len(json.dumps(metadata, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"'metadata' must be at most {MAX_METADATA_BYTES} bytes as JSON.",
                             field="metadata")
    webhook_url = _string(body, "webhook_url", max_len=2048)
    if webhook_url is not None and not webhook_url.startswith("https://"):
        raise InvalidRequest("'webhook_url' must be an https:// URL.", field="webhook_url")

    prompt = _string(body, "prompt", max_len=MAX_PROMPT_CHARS)
    negative_prompt = _string(body, "negative_prompt", max_len=MAX_PROMPT_CHARS)
    return JobRequest(
        image=_string(body, "image", required=True),
        video=_string(body, "video", required=True),
        character_orientation=_choice(body, "character_orientation", ORIENTATIONS, "image"),
        quality=_choice(body, "quality", QUALITIES, "pro"),
        prompt=prompt if prompt and prompt.strip() else None,
        negative_prompt=negative_prompt if negative_prompt and negative_prompt.strip() else None,
        keep_original_sound=keep_sound,
        provider=_choice(body, "provider", PROVIDERS, None),
        webhook_url=webhook_url,
        metadata=metadata,
    )


def unmet_capability(request: JobRequest, provider: str) -> str | None:
    """Why `provider` cannot serve `request` (before any input is fetched), or None."""
    from motionrelay.providers import get_adapter

    caps = get_adapter(provider).capabilities
    if request.quality not in caps.qualities:
        return f"{provider} does not offer quality '{request.quality}'"
    if request.prompt and not caps.prompt:
        return f"{provider} does not accept a prompt"
    if request.negative_prompt and not caps.negative_prompt:
        return f"{provider} does not accept a negative_prompt"
    if not request.keep_original_sound and not caps.sound_control:
        return f"{provider} cannot drop the original sound (keep_original_sound=false)"
    if request.prompt and len(request.prompt) > caps.max_prompt_chars:
        return f"{provider} accepts prompts up to {caps.max_prompt_chars} characters"
    return None


def choose_provider(request: JobRequest, routing: tuple[str, ...]) -> str:
    """The requested provider if it can serve the request, else the first in routing that can."""
    from motionrelay.providers import known_provider

    if request.provider:
        if not known_provider(request.provider):
            raise ProviderCannotServe(f"The provider '{request.provider}' is not available in this "
                                      "deployment.", field="provider")
        reason = unmet_capability(request, request.provider)
        if reason:
            raise ProviderCannotServe(f"{reason}; change the request or choose another provider.",
                                      field="provider")
        return request.provider
    reasons = []
    for name in routing:
        if not known_provider(name):
            continue
        reason = unmet_capability(request, name)
        if reason is None:
            return name
        reasons.append(reason)
    raise ProviderCannotServe("No configured provider can serve this request: " + "; ".join(reasons or
                              ["no provider is configured"]) + ".")
