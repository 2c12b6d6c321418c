"""A parsed `POST /v1/jobs` body (validation.parse_job_request builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
