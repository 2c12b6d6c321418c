"""`motionrelay submit`'s checks of local files before anything is uploaded: the same rules, and
the same error codes, as the API's (the package's own code does it: `domain.media` sniffs the
magic bytes, `probe` reads the image with Pillow and the video with PyAV, `validation.check_media`
applies the model's limits). A refusal costs no upload and no round trip; the API still checks
everything again, so skipping these (`--no-local-checks`) is only slower, never unsafe. A
video larger than the deployment's providers accept is refused by `POST /v1/uploads` (413)
before any byte of it is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from motionrelay_cli.api import PASS_THROUGH, ApiError
from motionrelay_cli.progress import size_text

LOCALLY = " (checked locally; nothing was uploaded)"


def _refusal(exc: Any) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message + LOCALLY, exc.field)


def check_file(path: Path, kind: str, *, orientation: str) -> str:
    """Check one local input; returns what was found (for a note), raises ApiError like the API."""
    from motionrelay.domain.errors import MotionRelayError
    from motionrelay.domain.media import require_kind
    from motionrelay.probe import probe_image, probe_video
    from motionrelay.validation import JobRequest, check_media

    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            content_type = require_kind(fh.read(16), kind, kind)
            fh.seek(0)
            facts = (probe_image(fh, size, field=kind) if kind == "image"
                     else probe_video(fh, size, content_type, field=kind))
        check_media(facts, JobRequest(image="", video="", character_orientation=orientation))
    except MotionRelayError as exc:
        raise _refusal(exc) from None
    found = f"{facts.format} {facts.width}x{facts.height}, {size_text(size)}"
    if facts.duration is not None:
        found += f", {facts.duration:.1f} s"
    return f"checked {path.name}: {found}"


def check_inputs(image: str, video: str, *, orientation: str | None) -> list[str]:
    """Check the inputs that are local files (URLs, data: URIs and upload:<id> are the API's)."""
    notes = []
    for value, kind in ((image, "image"), (video, "video")):
        if value.startswith(PASS_THROUGH):
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            continue  # the upload names the missing file
        notes.append(check_file(path, kind, orientation=orientation or "image"))
    return notes
