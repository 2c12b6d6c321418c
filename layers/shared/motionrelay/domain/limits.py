"""The model's own limits on inputs (Kling 2.6 Motion Control, whoever resells it): sizes,
sides, aspect ratio and durations. Each refusal names the field and says what to change."""

from __future__ import annotations

from motionrelay.domain.errors import (
    BadAspectRatio,
    InputTooLarge,
    InputTooLong,
    InputTooShort,
    InputTooSmall,
)
from motionrelay.domain.job_request import JobRequest
from motionrelay.domain.media import MediaFacts

MB = 1024 * 1024
MIN_SIDE_PX = 300
MAX_ASPECT_RATIO = 2.5  # long side / short side: 1:2.5 .. 2.5:1
MIN_VIDEO_SECONDS = 3.0
MAX_VIDEO_SECONDS = {"image": 10.0, "video": 30.0}  # by character_orientation
MAX_IMAGE_BYTES = 10 * MB
DURATION_SLACK_SECONDS = 0.05  # container durations are rounded to frames/ticks


def sized(n: int) -> str:
    if n >= MB:
        return f"{round(n / MB, 1):g} MB"
    return f"{round(n / 1024, 1):g} KB" if n >= 1024 else f"{n} bytes"


def check_media(facts: MediaFacts, request: JobRequest) -> None:
    """The universal limits for one probed input; raises the specific refusal."""
    kind = facts.kind
    if kind == "image" and facts.size_bytes > MAX_IMAGE_BYTES:
        raise InputTooLarge(f"'image' is larger than {sized(MAX_IMAGE_BYTES)}; send a smaller image.",
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
