"""Staging the job's inputs in S3, whatever form they arrive in.

Providers get presigned GET URLs of the staged copies: a client's URL may expire or change
before the provider reads it, and data URIs are not accepted by every provider.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from motionrelay.errors import InputTooLarge, InputUnreachable, InvalidRequest, UnsupportedMedia
from motionrelay.media import extension, require_kind
from motionrelay.resources import INPUT_PREFIX
from motionrelay.storage import StoredObject, put_bytes, stream_upload

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,", re.I)
FETCH_TIMEOUT_SECONDS = 20.0


def stage_input(job_id: str, kind: str, value: str, *, max_bytes: int, allow_loopback: bool,
                client: Any = None) -> tuple[StoredObject, dict[str, Any]]:
    """Store one input under the job's input prefix. Returns the object and the normalised,
    blob-free description kept on the job."""
    field = kind
    if value.startswith("data:"):
        stored = _stage_data_uri(job_id, kind, value, max_bytes=max_bytes)
        source: dict[str, Any] = {"source": "data_uri"}
    elif value.startswith(("https://", "http://")):
        stored = _stage_url(job_id, kind, value, max_bytes=max_bytes, allow_loopback=allow_loopback,
                            client=client)
        source = {"source": "url", "url": value}
    elif value.startswith("upload:"):
        raise InvalidRequest(f"'{field}': upload references are not enabled in this deployment; "
                             "send an https:// URL or a data: URI.", field=field)
    else:
        raise InvalidRequest(f"'{field}' must be an https:// URL, a data: URI or an upload:<id>.",
                             field=field)
    source.update(content_type=stored.content_type, size_bytes=stored.size_bytes, sha256=stored.sha256)
    return stored, source


def _key(job_id: str, kind: str, content_type: str) -> str:
    return f"{INPUT_PREFIX}{job_id}/{kind}.{extension(content_type)}"


def _stage_data_uri(job_id: str, kind: str, value: str, *, max_bytes: int) -> StoredObject:
    match = _DATA_URI.match(value)
    if not match:
        raise InvalidRequest(f"'{kind}' is not a base64 data: URI (data:<type>;base64,<data>).", field=kind)
    declared = match.group("mime").lower()
    if not declared.startswith(f"{kind}/"):
        raise UnsupportedMedia(f"'{kind}' declares type {declared}; send a {kind}.", field=kind)
    payload = value[match.end():]
    # Cheap size check before decoding: base64 is 4 chars per 3 bytes.
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise InputTooLarge(f"'{kind}' is larger than {max_bytes // (1024 * 1024)} MB.", field=kind)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"'{kind}' contains invalid or truncated base64 data.", field=kind) from exc
    if len(data) > max_bytes:
        raise InputTooLarge(f"'{kind}' is larger than {max_bytes // (1024 * 1024)} MB.", field=kind)
    content_type = require_kind(data[:64], kind, kind)
    return put_bytes(_key(job_id, kind, content_type), data, content_type)


def _stage_url(job_id: str, kind: str, url: str, *, max_bytes: int, allow_loopback: bool,
               client: Any = None) -> StoredObject:
    import httpx

    from motionrelay.netguard import guarded_client

    own_client = client is None
    client = client or guarded_client(allow_loopback=allow_loopback, timeout=FETCH_TIMEOUT_SECONDS)
    try:
        return _copy_response(job_id, kind, url, client, max_bytes=max_bytes, allow_loopback=allow_loopback)
    except httpx.HTTPError as exc:  # the body broke off or stalled after the headers arrived
        raise InputUnreachable(f"'{kind}' URL could not be read to the end ({type(exc).__name__}).",
                               field=kind) from exc
    finally:
        if own_client:
            client.close()


def _copy_response(job_id: str, kind: str, url: str, client: Any, *, max_bytes: int,
                   allow_loopback: bool) -> StoredObject:
    from motionrelay.netguard import open_stream

    with open_stream(client, url, allow_loopback=allow_loopback, field=kind) as response:
        if response.status_code != 200:
            raise InputUnreachable(f"'{kind}' URL answered HTTP {response.status_code}.", field=kind)
        declared_length = response.headers.get("content-length")
        if declared_length and declared_length.isdigit() and int(declared_length) > max_bytes:
            raise InputTooLarge(f"'{kind}' is larger than {max_bytes // (1024 * 1024)} MB.", field=kind)
        # The key depends on the sniffed type, so the first chunk decides it.
        chunks = response.iter_bytes(chunk_size=1024 * 1024)
        first = next(chunks, b"")
        content_type = require_kind(first[:64], kind, kind)

        def all_chunks():
            yield first
            yield from chunks

        return stream_upload(_key(job_id, kind, content_type), all_chunks(),
                             content_type=content_type, max_bytes=max_bytes, field=kind)
