"""Recognising media by its first bytes, not by what a client or a server claims, and the
facts a probe found in them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from motionrelay.domain.errors import UnsupportedMedia

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg"}
VIDEO_TYPES = {"video/mp4": "mp4", "video/quicktime": "mov", "video/x-matroska": "mkv"}


def sniff(head: bytes) -> str | None:
    """The content type the bytes really are, for the formats this service handles."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:10] == b"qt" else "video/mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"free", b"wide"):
        return "video/quicktime"  # old QuickTime files start with an atom other than ftyp
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/x-matroska"
    return None


def require_kind(head: bytes, kind: str, field: str) -> str:
    """The sniffed content type, or UnsupportedMedia if it is not an accepted `kind`."""
    actual = sniff(head)
    accepted = IMAGE_TYPES if kind == "image" else VIDEO_TYPES
    if actual not in accepted:
        expected = "a PNG or JPEG image" if kind == "image" else "an MP4 or MOV video"
        raise UnsupportedMedia(f"'{field}' must be {expected}; the content is not.", field=field)
    return actual


def extension(content_type: str) -> str:
    return {**IMAGE_TYPES, **VIDEO_TYPES}.get(content_type, "bin")


@dataclass(frozen=True)
class MediaFacts:
    """What a probe found. `format` is png|jpeg for images, mp4|mov|mkv for videos."""

    kind: str
    format: str
    width: int
    height: int
    size_bytes: int
    duration: float | None = None  # seconds, videos only
    has_audio: bool = False

    def describe(self) -> dict[str, Any]:
        """The facts kept on the job's normalised request."""
        facts: dict[str, Any] = {"format": self.format, "width": self.width, "height": self.height}
        if self.kind == "video":
            facts.update(duration_seconds=round(self.duration or 0.0, 3), has_audio=self.has_audio)
        return facts
