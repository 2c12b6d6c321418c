"""Parsing and checking `POST /v1/jobs` bodies (architecture.md, HTTP API v1).

Every refusal names the field and says what to change; nothing is written before this passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from motionrelay.domain.errors import ForbiddenUrl, InvalidRequest, ProviderCannotServe
from motionrelay.settings import PROVIDERS

if TYPE_CHECKING:
    from motionrelay.probe import MediaFacts
    from motionrelay.providers.base import Capabilities

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


# --------------------------------------------------------------------------- limits
# The model's own limits (Kling 2.6 Motion Control), whoever resells it. They give the specific
# error codes; what one provider adds on top comes from its adapter's Capabilities.
MB = 1024 * 1024
MIN_SIDE_PX = 300
MAX_ASPECT_RATIO = 2.5  # long side / short side: 1:2.5 .. 2.5:1
MIN_VIDEO_SECONDS = 3.0
MAX_VIDEO_SECONDS = {"image": 10.0, "video": 30.0}  # by character_orientation
MAX_IMAGE_BYTES = 10 * MB
DURATION_SLACK_SECONDS = 0.05  # container durations are rounded to frames/ticks


def _mb(n: int) -> str:
    if n >= MB:
        return f"{round(n / MB, 1):g} MB"
    return f"{round(n / 1024, 1):g} KB" if n >= 1024 else f"{n} bytes"


def check_media(facts: MediaFacts, request: JobRequest) -> None:
    """The universal limits for one probed input; raises the specific refusal."""
    from motionrelay.domain.errors import (
        BadAspectRatio,
        InputTooLarge,
        InputTooLong,
        InputTooShort,
        InputTooSmall,
    )

    kind = facts.kind
    if kind == "image" and facts.size_bytes > MAX_IMAGE_BYTES:
        raise InputTooLarge(f"'image' is larger than {_mb(MAX_IMAGE_BYTES)}; send a smaller image.",
                            field=kind)
    short, long_ = sorted((facts.width, facts.height))
    if short < MIN_SIDE_PX:
        raise InputTooSmall(f"'{kind}' is {facts.width}x{facts.height} px; each side must be at least "
                            f"{MIN_SIDE_PX} px. Send a larger {kind}.", field=kind)
    if long_ > short * MAX_ASPECT_RATIO:
        raise BadAspectRatio(f"'{kind}' is {facts.width}x{facts.height} px (aspect ratio "
                             f"{long_ / short:.2f}:1); it must be between 1:{MAX_ASPECT_RATIO:g} and "
                             f"{MAX_ASPECT_RATIO:g}:1. Crop or pad it.", field=kind)
    if kind != "video" or facts.duration is None:
        return
    seconds = facts.duration
    if seconds + DURATION_SLACK_SECONDS < MIN_VIDEO_SECONDS:
        raise InputTooShort(f"'video' is {seconds:.1f} s long; it must be at least {MIN_VIDEO_SECONDS:g} s.",
                            field=kind)
    limit = MAX_VIDEO_SECONDS[request.character_orientation]
    if seconds - DURATION_SLACK_SECONDS > limit:
        hint = (" or set character_orientation to 'video' (up to 30 s)"
                if request.character_orientation == "image" else "")
        raise InputTooLong(f"'video' is {seconds:.1f} s long; with character_orientation "
                           f"'{request.character_orientation}' the limit is {limit:g} s. Trim it{hint}.",
                           field=kind)


# --------------------------------------------------------------------------- providers
Unmet = tuple[str, str]  # (field to change, reason)


def _capabilities(provider: str) -> Capabilities:
    from motionrelay.registry import get_adapter

    return get_adapter(provider).capabilities


def _request_unmet(request: JobRequest, provider: str, caps: Capabilities) -> Unmet | None:
    """Why `provider` cannot serve the request as written (no input read yet), or None."""
    if request.quality not in caps.qualities:
        offered = ", ".join(sorted(caps.qualities))
        return "quality", f"{provider} does not offer quality '{request.quality}' (only {offered})"
    if request.prompt and not caps.prompt:
        return "prompt", f"{provider} does not accept a prompt"
    if request.negative_prompt and not caps.negative_prompt:
        return "negative_prompt", f"{provider} does not accept a negative_prompt"
    if not request.keep_original_sound and not caps.sound_control:
        return "keep_original_sound", f"{provider} cannot drop the original sound (keep_original_sound=false)"
    if request.prompt and len(request.prompt) > caps.max_prompt_chars:
        return "prompt", f"{provider} accepts prompts up to {caps.max_prompt_chars} characters"
    if request.negative_prompt and len(request.negative_prompt) > caps.max_prompt_chars:
        return "negative_prompt", (f"{provider} accepts negative prompts up to {caps.max_prompt_chars} "
                                   "characters")
    return None


def _media_unmet(request: JobRequest, provider: str, caps: Capabilities,
                 media: dict[str, MediaFacts]) -> Unmet | None:
    """Why `provider` cannot serve these probed inputs, or None."""
    image, video = media.get("image"), media.get("video")
    if image is not None and image.size_bytes > caps.max_image_bytes:
        return "image", f"{provider} accepts images up to {_mb(caps.max_image_bytes)}"
    if video is None:
        return None
    if video.format not in caps.video_containers:
        accepted = ", ".join(sorted(caps.video_containers)).upper()
        return "video", f"{provider} accepts {accepted} videos, not {video.format.upper()}"
    if video.size_bytes > caps.max_video_bytes:
        return "video", f"{provider} accepts videos up to {_mb(caps.max_video_bytes)}"
    if video.duration is not None:
        longest = (caps.max_video_seconds_image_orientation if request.character_orientation == "image"
                   else caps.max_video_seconds_video_orientation)
        if video.duration - DURATION_SLACK_SECONDS > longest:
            return "video", (f"{provider} accepts videos up to {longest:g} s with character_orientation "
                             f"'{request.character_orientation}'")
        if video.duration + DURATION_SLACK_SECONDS < caps.min_video_seconds:
            return "video", f"{provider} needs videos of at least {caps.min_video_seconds:g} s"
    return None


def _skipped(provider: str, reason: str) -> dict[str, Any]:
    from motionrelay.domain.job import iso, utc_now

    return {"provider": provider, "outcome": "skipped", "reason": reason, "at": iso(utc_now())}


def rank_providers(request: JobRequest, routing: tuple[str, ...] | list[str],
                   media: dict[str, MediaFacts] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """The providers that can serve the request (and its probed `media`, when given), in
    routing order, and one `skipped` attempt record per provider left out and why.

    With `request.provider` that provider alone is considered: if it is not in the routing
    or cannot serve the request, ProviderCannotServe names the unmet limit and the field.
    Without it, ProviderCannotServe only when no provider in the routing can serve."""
    def unmet(name: str) -> Unmet | None:
        caps = _capabilities(name)
        return _request_unmet(request, name, caps) or (
            _media_unmet(request, name, caps, media) if media else None)

    if request.provider:
        if request.provider not in routing:
            raise ProviderCannotServe(
                f"The provider '{request.provider}' is not enabled in this deployment (routing: "
                f"{', '.join(routing) or 'none'}); choose one of those or omit 'provider'.", field="provider")
        found = unmet(request.provider)
        if found:
            field_name, reason = found
            raise ProviderCannotServe(f"{reason}; change '{field_name}', choose another provider, or omit "
                                      "'provider' to let routing choose.", field=field_name)
        return [request.provider], []
    candidates: list[str] = []
    skipped: list[dict[str, Any]] = []
    first_unmet: Unmet | None = None
    for name in routing:
        found = unmet(name)
        if found is None:
            candidates.append(name)
            continue
        first_unmet = first_unmet or found
        skipped.append(_skipped(name, found[1]))
    if not candidates:
        reasons = "; ".join(s["reason"] for s in skipped) or "no provider is configured"
        raise ProviderCannotServe(f"No provider in this deployment can serve this request: {reasons}. "
                                  "Change the request accordingly.",
                                  field=first_unmet[0] if first_unmet else None)
    return candidates, skipped


def staging_limit(kind: str, candidates: list[str]) -> int:
    """The most bytes worth staging for `kind`: the largest cap among the candidates."""
    caps = [_capabilities(name) for name in candidates]
    if kind == "image":
        return min(MAX_IMAGE_BYTES, max(c.max_image_bytes for c in caps))
    return max(c.max_video_bytes for c in caps)


def too_large(request: JobRequest, kind: str, limit: int, routing: tuple[str, ...] | list[str]) -> Exception:
    """The refusal for an input over `limit` bytes: `input_too_large`, unless the named
    provider's own cap is what it exceeds while another enabled provider would take more."""
    from motionrelay.domain.errors import InputTooLarge

    if request.provider:
        attr = "max_image_bytes" if kind == "image" else "max_video_bytes"
        universal = MAX_IMAGE_BYTES if kind == "image" else None
        others = [getattr(_capabilities(n), attr) for n in routing if n != request.provider]
        roomier = [cap for cap in others if cap > limit and (universal is None or limit < universal)]
        if roomier:
            return ProviderCannotServe(
                f"{request.provider} accepts {kind}s up to {_mb(limit)}; send a smaller {kind}, or omit "
                f"'provider' (another enabled provider accepts up to {_mb(max(roomier))}).", field=kind)
    return InputTooLarge(f"'{kind}' is larger than {_mb(limit)}, the most any provider that could serve "
                         f"this request accepts; send a smaller {kind}.", field=kind)
