"""Staging the job's inputs in S3, whatever form they arrive in.

Providers get presigned GET URLs of the staged copies: a client's URL may expire or change
before the provider reads it, and data URIs are not accepted by every provider. An
`upload:<id>` (POST /v1/uploads) is copied too, server-side (S3 CopyObject, conditional on
the ETag that was checked), to the job's own key: its presigned PUT stays valid for an hour,
so the upload itself could be replaced after the probe. Every form ends as an S3 object of
the job's that `motionrelay.probe` then reads by range and the provider is given.
A URL is fetched within a wall-clock budget (`stage_input(deadline=...)`), not only a
per-read timeout: a server dripping bytes cannot hold the request past it.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from motionrelay.domain.errors import (
    Conflict,
    InputTooLarge,
    InputUnreachable,
    InvalidRequest,
    UnsupportedMedia,
)
from motionrelay.domain.media import IMAGE_TYPES, VIDEO_TYPES, extension, require_kind
from motionrelay.infra.blobs import StoredObject, put_bytes, stream_upload
from motionrelay.infra.resources import INPUT_PREFIX

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,", re.I)
FETCH_TIMEOUT_SECONDS = 20.0  # per read (connect: 10 s)
STAGE_BUDGET_SECONDS = 20.0  # in all, for one input, when the caller gives no deadline


class OverCap(InputTooLarge):
    """An input over the staging cap (`max_bytes`); the caller words the refusal, since which
    providers' limits it exceeds is routing's business."""

    def __init__(self, kind: str, limit: int) -> None:
        super().__init__(f"'{kind}' is larger than {limit} bytes.", field=kind)
        self.limit = limit


def stage_input(job_id: str, kind: str, value: str, *, max_bytes: int, allow_loopback: bool,
                client: Any = None, tenant_id: str | None = None,
                deadline: float | None = None) -> tuple[StoredObject, dict[str, Any]]:
    """Store one input under the job's input prefix (an upload is copied there). Returns the
    object and the normalised, blob-free description kept on the job. Raises OverCap past
    `max_bytes`. `deadline` (a `time.monotonic()` value; default STAGE_BUDGET_SECONDS from
    now) bounds a URL fetch in all: past it the fetch is dropped with `input_unreachable`."""
    field = kind
    if deadline is None:
        deadline = time.monotonic() + STAGE_BUDGET_SECONDS
    if value.startswith("data:"):
        stored = _stage_data_uri(job_id, kind, value, max_bytes=max_bytes)
        source: dict[str, Any] = {"source": "data_uri"}
    elif value.startswith(("https://", "http://")):
        stored = _stage_url(job_id, kind, value, max_bytes=max_bytes, allow_loopback=allow_loopback,
                            client=client, deadline=deadline)
        source = {"source": "url", "url": value}
    elif value.startswith("upload:"):
        stored = _use_upload(job_id, kind, value, tenant_id=tenant_id or "", max_bytes=max_bytes)
        source = {"source": "upload", "upload_id": value}
    else:
        raise InvalidRequest(f"'{field}' must be an https:// URL, a data: URI or an upload:<id>.",
                             field=field)
    source.update(content_type=stored.content_type, size_bytes=stored.size_bytes)
    if stored.sha256:  # not known for uploads, which are copied server-side, never read whole
        source["sha256"] = stored.sha256
    return stored, source


def discard(stored: list[StoredObject]) -> None:
    """Delete inputs staged for a refused request (best effort: the lifecycle rule is the
    backstop). Only the job's own staged objects are passed here, never a client's upload."""
    from motionrelay.infra.blobs import delete
    from motionrelay.observability import logger

    for obj in stored:
        try:
            delete(obj.key)
        except Exception:  # noqa: BLE001 - cleanup must not hide the refusal
            logger.warning("could not delete a refused input", extra={"key": obj.key})


def _key(job_id: str, kind: str, content_type: str) -> str:
    return f"{INPUT_PREFIX}{job_id}/{kind}.{extension(content_type)}"


def _stage_data_uri(job_id: str, kind: str, value: str, *, max_bytes: int) -> StoredObject:
    match = _DATA_URI.match(value)
    if not match:
        raise InvalidRequest(f"'{kind}' is not a base64 data: URI (data:<type>;base64,<data>).", field=kind)
    declared = match.group("mime").lower()
    accepted = IMAGE_TYPES if kind == "image" else VIDEO_TYPES
    if declared not in accepted:
        expected = "image/png or image/jpeg" if kind == "image" else "video/mp4 or video/quicktime"
        raise UnsupportedMedia(f"'{kind}' declares type {declared}; send {expected}.", field=kind)
    payload = value[match.end():]
    # Cheap size check before decoding: base64 is 4 chars per 3 bytes.
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise OverCap(kind, max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"'{kind}' contains invalid or truncated base64 data.", field=kind) from exc
    if len(data) > max_bytes:
        raise OverCap(kind, max_bytes)
    content_type = require_kind(data[:64], kind, kind)
    return put_bytes(_key(job_id, kind, content_type), data, content_type)


def _stage_url(job_id: str, kind: str, url: str, *, max_bytes: int, allow_loopback: bool,
               client: Any = None, deadline: float) -> StoredObject:
    import httpx

    from motionrelay.infra.netguard import FetchTooSlow, guarded_client

    own_client = client is None
    client = client or guarded_client(allow_loopback=allow_loopback, timeout=FETCH_TIMEOUT_SECONDS)
    try:
        return _copy_response(job_id, kind, url, client, max_bytes=max_bytes, allow_loopback=allow_loopback,
                              deadline=deadline)
    except FetchTooSlow as exc:
        raise InputUnreachable(f"'{kind}' took too long to fetch (more than {exc.seconds:.3g} s in all); "
                               "serve it faster, or upload it with POST /v1/uploads.", field=kind) from exc
    except httpx.HTTPError as exc:  # the body broke off or stalled after the headers arrived
        raise InputUnreachable(f"'{kind}' URL could not be read to the end ({type(exc).__name__}).",
                               field=kind) from exc
    finally:
        if own_client:
            client.close()


def _copy_response(job_id: str, kind: str, url: str, client: Any, *, max_bytes: int,
                   allow_loopback: bool, deadline: float) -> StoredObject:
    from motionrelay.infra.netguard import open_stream

    with open_stream(client, url, allow_loopback=allow_loopback, field=kind, deadline=deadline) as response:
        if response.status_code != 200:
            raise InputUnreachable(f"'{kind}' URL answered HTTP {response.status_code}.", field=kind)
        declared_length = response.headers.get("content-length")
        if declared_length and declared_length.isdigit() and int(declared_length) > max_bytes:
            raise OverCap(kind, max_bytes)
        # The key depends on the sniffed type, so the first chunk decides it.
        chunks = response.iter_bytes(chunk_size=1024 * 1024)
        first = next(chunks, b"")
        content_type = require_kind(first[:64], kind, kind)

        def all_chunks():
            yield first
            yield from chunks

        try:
            return stream_upload(_key(job_id, kind, content_type), all_chunks(),
                                 content_type=content_type, max_bytes=max_bytes, field=kind)
        except InputTooLarge as exc:  # more bytes than Content-Length said, or none was given
            raise OverCap(kind, max_bytes) from exc


def _use_upload(job_id: str, kind: str, ref: str, *, tenant_id: str, max_bytes: int) -> StoredObject:
    """An `upload:<id>` of this tenant, completed, within its declared size and the cap, copied
    to the job's own input key. The copy is conditional on the ETag the checks were made on,
    and everything after (sniff, probe, the provider's presigned GET) reads the copy: the
    client's presigned PUT stays valid for an hour, and replacing the upload later must not
    change what the job was validated on or what the provider is given."""
    from motionrelay.infra.blobs import head, read_range
    from motionrelay.uploads import resolve_upload

    upload = resolve_upload(tenant_id, ref, field=kind)
    if upload.kind != kind:
        raise UnsupportedMedia(f"'{kind}' refers to an upload declared as {upload.content_type}; "
                               f"use an upload of a {kind}.", field=kind)
    meta = head(upload.key)
    if meta is None:
        raise InputUnreachable(f"'{kind}': upload not completed; PUT the file to the upload's put_url "
                               "first, then submit the job.", field=kind)
    size = int(meta["ContentLength"])
    if size > upload.size_bytes:
        raise InputTooLarge(f"'{kind}': the uploaded file is {size} bytes, larger than the "
                            f"{upload.size_bytes} declared; create a new upload with the file's exact size.",
                            field=kind)
    if size > max_bytes:
        raise OverCap(kind, max_bytes)
    key = _key(job_id, kind, upload.content_type)
    _copy_upload(upload.key, key, etag=meta["ETag"], content_type=upload.content_type, kind=kind)
    try:
        first = read_range(key, 0, 63) if size else b""
        content_type = require_kind(first, kind, kind)
        if content_type != upload.content_type:
            # The object is served to providers with the declared Content-Type: it must be true.
            raise UnsupportedMedia(f"'{kind}': the upload was declared as {upload.content_type} but the "
                                   f"file is {content_type}; create a new upload with the right "
                                   "content_type.", field=kind)
    except BaseException:
        discard([StoredObject(key, size, "", upload.content_type)])
        raise
    return StoredObject(key, size, "", content_type)


def _copy_upload(source_key: str, key: str, *, etag: str, content_type: str, kind: str) -> None:
    """Copy the upload to the job's key, only if it is still the object that was HEADed."""
    from motionrelay.infra.blobs import SourceChanged, SourceGone, copy_if_unchanged

    try:
        copy_if_unchanged(source_key, key, etag=etag, content_type=content_type)
    except SourceChanged as exc:
        raise Conflict(f"'{kind}': the upload was replaced while this job was being created; "
                       "submit the job again.", code="upload_changed", field=kind) from exc
    except SourceGone as exc:
        raise InputUnreachable(f"'{kind}': the upload is gone (deleted or expired); create a new "
                               "one with POST /v1/uploads.", field=kind) from exc
