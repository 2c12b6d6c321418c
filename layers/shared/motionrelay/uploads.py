"""`POST /v1/uploads`: presigned S3 PUTs for inputs too large for an API request.

A Lambda behind API Gateway takes at most 6 MB per request (a data: URI holds ~4 MB), so a
client uploads big inputs straight to the bucket and passes `upload:<id>` as `image`/`video`.

- The PUT URL signs `Content-Type` and `Content-Length`: S3 itself refuses a body of another
  size or type. The object lands under `inputs/uploads/`, which the lifecycle rule expires.
- The record (pk `UPLOAD#<id>`, in the jobs table) keeps the tenant, key and declared type
  and size. It carries no `tenant_id` attribute on purpose: that would put it in the
  `by_tenant` index among the tenant's jobs.
- An id resolves only for the tenant that created it and only until `usable_until`; any
  other case looks exactly like an unknown id.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from motionrelay.apikeys import Principal
from motionrelay.domain.errors import InputTooLarge, InputUnreachable, InvalidRequest, UnsupportedMedia
from motionrelay.domain.job import iso, utc_now
from motionrelay.domain.media import extension
from motionrelay.domain.upload import CONTENT_TYPES, REF_PREFIX, Upload
from motionrelay.infra.jobs_table import JobStore
from motionrelay.infra.resources import INPUT_PREFIX
from motionrelay.settings import get_settings

UPLOAD_PREFIX = f"{INPUT_PREFIX}uploads/"
PUT_URL_TTL_SECONDS = 3600
# Usable in jobs for a day: the object then still outlives the providers' presigned GETs
# (12 h) before the 2-day lifecycle rule deletes it.
USABLE_SECONDS = 24 * 3600
_FIELDS = {"content_type", "size_bytes"}
_ID = re.compile(r"^[0-9a-f]{32}$")


def parse_upload_request(raw_body: str | bytes | None) -> tuple[str, int]:
    """`{content_type, size_bytes}` -> (content_type, size_bytes); the size cap is checked later."""
    try:
        body = json.loads(raw_body or "")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[[[[..."
        raise InvalidRequest("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object: {content_type, size_bytes}.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown field '{unknown[0]}'.", field=unknown[0])
    content_type, size = body.get("content_type"), body.get("size_bytes")
    if not isinstance(content_type, str) or not content_type:
        raise InvalidRequest("'content_type' is required: image/jpeg, image/png, video/mp4 or "
                             "video/quicktime.", field="content_type")
    content_type = content_type.strip().lower()
    if content_type not in CONTENT_TYPES:
        raise UnsupportedMedia(f"'content_type' {content_type!r} is not accepted; use one of: "
                               f"{', '.join(CONTENT_TYPES)}.", field="content_type")
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidRequest("'size_bytes' is required: the file's exact size in bytes, an integer.",
                             field="size_bytes")
    if size <= 0:
        raise InvalidRequest("'size_bytes' must be positive.", field="size_bytes")
    return content_type, size


def create_upload(principal: Principal, content_type: str, size_bytes: int,
                  store: JobStore | None = None) -> dict[str, Any]:
    """Record the upload and return `{id, put_url, expires_at}` (expiry of the PUT URL)."""
    from motionrelay.infra.blobs import presign_put
    from motionrelay.validation import staging_limit

    kind = CONTENT_TYPES[content_type]
    # The largest cap of any provider this deployment routes to: nothing bigger is usable.
    limit = staging_limit(kind, list(get_settings().routing))
    if size_bytes > limit:
        raise InputTooLarge(f"'size_bytes' is {size_bytes}; {kind}s are accepted up to {limit} bytes "
                            f"({limit / (1024 * 1024):g} MB).", field="size_bytes")
    upload_id = secrets.token_hex(16)
    now = utc_now()
    upload = Upload(
        id=upload_id, tenant_id=principal.tenant_id,
        key=f"{UPLOAD_PREFIX}{upload_id}.{extension(content_type)}",
        content_type=content_type, size_bytes=size_bytes, created_at=iso(now),
        usable_until=int(now.timestamp()) + USABLE_SECONDS,
    )
    (store or JobStore()).put_upload(upload)
    # ContentType and ContentLength become signed headers: S3 refuses any other body.
    put_url = presign_put(upload.key, content_type, size_bytes, PUT_URL_TTL_SECONDS)
    expires_at = iso(datetime.fromtimestamp(now.timestamp() + PUT_URL_TTL_SECONDS, UTC))
    return {"id": upload.ref, "put_url": put_url, "expires_at": expires_at}


def resolve_upload(tenant_id: str, ref: str, *, field: str, store: JobStore | None = None) -> Upload:
    """The tenant's upload named by `upload:<id>`. Unknown, expired and another tenant's
    uploads all get the same answer, so ids of other tenants cannot be probed."""
    upload_id = ref[len(REF_PREFIX):] if ref.startswith(REF_PREFIX) else ""
    upload = (store or JobStore()).get_upload(upload_id) if _ID.match(upload_id) else None
    if upload is None or upload.tenant_id != tenant_id or upload.usable_until < time.time():
        raise InputUnreachable(f"'{field}': there is no upload '{ref}' (unknown or expired); create one with "
                               "POST /v1/uploads and PUT the file to its put_url.", field=field)
    return upload
