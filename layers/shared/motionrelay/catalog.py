"""`GET /v1/providers`: the providers this deployment can serve right now, and what each can do.

A provider is listed when it is in the routing (`MOTIONRELAY_ROUTING`) and its key is set
(environment or provider secret): exactly the names a job's `provider` field may pin. Its
capabilities come from its adapter, nowhere else, so the console's choices (qualities, prompt,
sound) are the ones validation will apply. Run times are the deployment's: scaled by
`MOTIONRELAY_POLL_TIME_SCALE` like the poller's schedule (the local stack runs 20x faster).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from motionrelay.settings import PROVIDERS, get_settings

if TYPE_CHECKING:
    from motionrelay.domain.capabilities import Capabilities


def _declared(provider: str | None) -> Capabilities | None:
    """The capabilities an adapter module declares, read without its credentials (the notifier,
    which renders job resources too, has no access to the provider secret)."""
    if not provider or provider not in PROVIDERS:
        return None
    module = importlib.import_module(f"motionrelay.providers.{provider}")  # lazy: cold starts
    return getattr(module, "CAPABILITIES", None)


def typical_run_seconds(provider: str | None) -> list[float] | None:
    """How long a job usually runs at `provider` in this deployment: [low, high] seconds."""
    caps = _declared(provider)
    if caps is None:
        return None
    scale = get_settings().poll_time_scale
    low, high = caps.typical_run_seconds
    return [round(low * scale, 1), round(high * scale, 1)]


def reports_progress(provider: str | None) -> bool | None:
    caps = _declared(provider)
    return None if caps is None else caps.progress


def describe(provider: str) -> dict[str, Any]:
    from motionrelay.registry import get_adapter

    caps = get_adapter(provider).capabilities
    return {
        "name": provider,
        "qualities": sorted(caps.qualities),
        "prompt": caps.prompt,
        "negative_prompt": caps.negative_prompt,
        "sound_control": caps.sound_control,
        "max_prompt_chars": caps.max_prompt_chars,
        "progress": caps.progress,
        "callbacks": caps.callbacks,
        "max_image_bytes": caps.max_image_bytes,
        "max_video_bytes": caps.max_video_bytes,
        "min_video_seconds": caps.min_video_seconds,
        "max_video_seconds": {"image": caps.max_video_seconds_image_orientation,
                              "video": caps.max_video_seconds_video_orientation},
        "video_containers": sorted(caps.video_containers),
        "typical_run_seconds": typical_run_seconds(provider),
    }


def available_providers() -> dict[str, Any]:
    """`{"providers": [...]}` in routing order: routed and with its key set."""
    from motionrelay.registry import has_credentials

    routing = get_settings().routing
    return {"providers": [describe(name) for name in routing if has_credentials(name)]}
