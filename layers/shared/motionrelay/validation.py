"""Parsing and checking `POST /v1/jobs` bodies (architecture.md, HTTP API v1).

Every refusal names the field and says what to change; nothing is written before this passes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from motionrelay.domain import routing as routing_rules
from motionrelay.domain.errors import ForbiddenUrl, InvalidRequest
from motionrelay.domain.job_request import JobRequest
from motionrelay.domain.limits import (
    DURATION_SLACK_SECONDS,
    MAX_ASPECT_RATIO,
    MAX_IMAGE_BYTES,
    MAX_VIDEO_SECONDS,
    MB,
    MIN_SIDE_PX,
    MIN_VIDEO_SECONDS,
    check_media,
)
from motionrelay.settings import PROVIDERS

if TYPE_CHECKING:
    from motionrelay.domain.capabilities import Capabilities
    from motionrelay.domain.media import MediaFacts

MAX_PROMPT_CHARS = 2500
MAX_METADATA_BYTES = 4096
ORIENTATIONS = ("image", "video")
QUALITIES = ("std", "pro")
_FIELDS = {
    "image", "video", "character_orientation", "quality", "prompt", "negative_prompt",
    "keep_original_sound", "provider", "webhook_url", "metadata",
}


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


def _check_webhook_url(url: str) -> None:
    """Refuse now what delivery would refuse for sure: a URL the SSRF guard cannot fetch, or
    whose host is a literal non-public address in any spelling getaddrinfo reads (decimal,
    hex, octal IPv4; IPv4-mapped, NAT64, 6to4 IPv6...), judged by the guard's own rules
    (loopback only in the local stack). Names are not resolved here: their DNS may change,
    and the guard at delivery checks the addresses they resolve to then."""
    from motionrelay.infra import netguard
    from motionrelay.settings import get_settings

    allow_loopback = get_settings().allow_loopback
    # Plain http only where netguard delivers it: the local stack (`motionrelay listen`).
    if not (url.startswith("https://") or (allow_loopback and url.startswith("http://"))):
        local = " (or http:// in the local stack)" if allow_loopback else ""
        raise InvalidRequest(f"'webhook_url' must be an https:// URL{local}.", field="webhook_url")
    host = netguard.check_url(url, allow_loopback=allow_loopback, field="webhook_url").host
    address = netguard.literal_address(host)
    if address is not None and not netguard.address_allowed(address, allow_loopback=allow_loopback):
        raise ForbiddenUrl(f"'webhook_url' names a non-public address ({address}); notifications are only "
                           "sent to public hosts. Use a public https:// URL.", field="webhook_url")
    name = host.lower().rstrip(".")
    if (name == "localhost" or name.endswith(".localhost")) and not allow_loopback:
        raise ForbiddenUrl("'webhook_url' names localhost; notifications are only sent to public hosts. "
                           "Use a public https:// URL.", field="webhook_url")


def parse_job_request(raw_body: str | bytes | None) -> JobRequest:
    if not raw_body:
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[[[[..."
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
    if webhook_url is not None:
        _check_webhook_url(webhook_url)

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


# --------------------------------------------------------------------------- limits and routing
# The rules live in the domain (domain/limits.py: the model's own limits; domain/routing.py:
# what each provider's Capabilities allow), pure, over a capabilities map; here they get the
# map of this deployment's providers from the registry.


def capabilities_of(providers: Iterable[str]) -> dict[str, Capabilities]:
    """`{name: Capabilities}` for the named providers, from their adapters (the registry)."""
    from motionrelay.registry import get_adapter

    return {name: get_adapter(name).capabilities for name in dict.fromkeys(providers)}


def rank_providers(request: JobRequest, routing: tuple[str, ...] | list[str],
                   media: dict[str, MediaFacts] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    names = [request.provider] if request.provider and request.provider in routing else list(routing)
    return routing_rules.rank_providers(request, routing, capabilities_of(names), media)


def staging_limit(kind: str, candidates: list[str]) -> int:
    return routing_rules.staging_limit(kind, capabilities_of(candidates).values())


def too_large(request: JobRequest, kind: str, limit: int, routing: tuple[str, ...] | list[str]) -> Exception:
    return routing_rules.too_large(request, kind, limit, routing, capabilities_of(routing))


__all__ = ["DURATION_SLACK_SECONDS", "MAX_ASPECT_RATIO", "MAX_IMAGE_BYTES", "MAX_VIDEO_SECONDS", "MB",
           "MIN_SIDE_PX", "MIN_VIDEO_SECONDS", "JobRequest", "check_media", "parse_job_request",
           "rank_providers", "staging_limit", "too_large"]
