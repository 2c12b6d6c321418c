"""An upload: a client's input file PUT straight to the bucket, named `upload:<id>` in jobs."""

from __future__ import annotations

from dataclasses import dataclass

REF_PREFIX = "upload:"
CONTENT_TYPES = {"image/jpeg": "image", "image/png": "image",
                 "video/mp4": "video", "video/quicktime": "video"}


@dataclass(frozen=True)
class Upload:
    id: str  # without the "upload:" prefix
    tenant_id: str
    key: str
    content_type: str
    size_bytes: int
    created_at: str
    usable_until: int  # epoch seconds; also the item's TTL

    @property
    def kind(self) -> str:
        return CONTENT_TYPES[self.content_type]

    @property
    def ref(self) -> str:
        return f"{REF_PREFIX}{self.id}"
