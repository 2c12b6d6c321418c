"""Which providers can serve a job, in routing order, and why the others cannot: pure, over a
`{name: Capabilities}` map the caller gives (validation.py reads it from the registry)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from motionrelay.domain.capabilities import Capabilities
from motionrelay.domain.errors import InputTooLarge, ProviderCannotServe
from motionrelay.domain.job import iso, utc_now
from motionrelay.domain.job_request import JobRequest
from motionrelay.domain.limits import DURATION_SLACK_SECONDS, MAX_IMAGE_BYTES, sized
from motionrelay.domain.media import MediaFacts

Unmet = tuple[str, str]  # (field to change, reason)


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
        return "image", f"{provider} accepts images up to {sized(caps.max_image_bytes)}"
    if video is None:
        return None
    if video.format not in caps.video_containers:
        accepted = ", ".join(sorted(caps.video_containers)).upper()
        return "video", f"{provider} accepts {accepted} videos, not {video.format.upper()}"
    if video.size_bytes > caps.max_video_bytes:
        return "video", f"{provider} accepts videos up to {sized(caps.max_video_bytes)}"
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
    return {"provider": provider, "outcome": "skipped", "reason": reason, "at": iso(utc_now())}


def rank_providers(request: JobRequest, routing: tuple[str, ...] | list[str],
                   capabilities: Mapping[str, Capabilities],
                   media: dict[str, MediaFacts] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """The providers that can serve the request (and its probed `media`, when given), in
    routing order, and one `skipped` attempt record per provider left out and why.

    With `request.provider` that provider alone is considered: if it is not in the routing
    or cannot serve the request, ProviderCannotServe names the unmet limit and the field.
    Without it, ProviderCannotServe only when no provider in the routing can serve."""
    def unmet(name: str) -> Unmet | None:
        caps = capabilities[name]
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


def staging_limit(kind: str, candidates: Iterable[Capabilities]) -> int:
    """The most bytes worth staging for `kind`: the largest cap among the candidates'."""
    caps = list(candidates)
    if kind == "image":
        return min(MAX_IMAGE_BYTES, max(c.max_image_bytes for c in caps))
    return max(c.max_video_bytes for c in caps)


def too_large(request: JobRequest, kind: str, limit: int, routing: tuple[str, ...] | list[str],
              capabilities: Mapping[str, Capabilities]) -> Exception:
    """The refusal for an input over `limit` bytes: `input_too_large`, unless the named
    provider's own cap is what it exceeds while another enabled provider would take more."""
    if request.provider:
        attr = "max_image_bytes" if kind == "image" else "max_video_bytes"
        universal = MAX_IMAGE_BYTES if kind == "image" else None
        others = [getattr(capabilities[n], attr) for n in routing if n != request.provider]
        roomier = [cap for cap in others if cap > limit and (universal is None or limit < universal)]
        if roomier:
            return ProviderCannotServe(
                f"{request.provider} accepts {kind}s up to {sized(limit)}; send a smaller {kind}, or omit "
                f"'provider' (another enabled provider accepts up to {sized(max(roomier))}).", field=kind)
    return InputTooLarge(f"'{kind}' is larger than {sized(limit)}, the most any provider that could serve "
                         f"this request accepts; send a smaller {kind}.", field=kind)
