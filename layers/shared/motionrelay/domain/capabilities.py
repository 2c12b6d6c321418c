"""What a provider can do with a job: the facts routing, validation and the poller's
schedule read, and nothing else. Each adapter declares its own (providers/*.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do with a job; routing and validation read these, nothing else."""

    callbacks: bool
    callback_auth: str  # "hmac-taskid-timestamp" | "url-token" | "none"
    inline_base64: bool
    max_image_bytes: int
    max_video_bytes: int
    max_video_seconds_image_orientation: float
    max_video_seconds_video_orientation: float
    min_video_seconds: float
    qualities: frozenset[str]
    prompt: bool
    negative_prompt: bool
    sound_control: bool
    progress: bool
    max_prompt_chars: int = 2500
    # How long a job usually runs at the provider (the resellers document 60-180 s); the
    # poller's schedule is built around it when the provider gives no ETA or progress.
    typical_run_seconds: tuple[float, float] = (60.0, 180.0)
    video_containers: frozenset[str] = field(default_factory=lambda: frozenset({"mp4", "mov"}))
