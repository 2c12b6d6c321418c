"""S3 storage: bounded-memory streaming uploads with sha256, presigned GETs.

`stream_upload` holds at most one part (8 MiB) in memory whatever the object's size: chunks
are appended to a part buffer that is sent and dropped as soon as it is full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from motionrelay.domain.errors import InputTooLarge, UnsupportedMedia
from motionrelay.domain.job import iso, utc_now
from motionrelay.infra.aws import client
from motionrelay.settings import get_settings

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB


class EmptyContent(UnsupportedMedia):
    """`stream_upload` got no bytes at all. Still `unsupported_media` for an input; the
    transfer tells it apart, since an empty provider output is final, not worth a retry."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str
    content_type: str


def bucket() -> str:
    return get_settings().bucket_name


def put_bytes(key: str, data: bytes, content_type: str) -> StoredObject:
    digest = hashlib.sha256(data).hexdigest()
    client("s3").put_object(
        Bucket=bucket(), Key=key, Body=data, ContentType=content_type, Metadata={"sha256": digest}
    )
    return StoredObject(key, len(data), digest, content_type)


def stream_upload(
    key: str,
    chunks: Iterable[bytes],
    *,
    content_type: str | Callable[[bytes], str],
    max_bytes: int,
    field: str | None = None,
    part_size: int = PART_SIZE,
) -> StoredObject:
    """Upload an iterable of chunks to `key`. `content_type` may be a function of the first
    bytes (sniffing), which may raise to refuse the content before anything is stored."""
    s3 = client("s3")
    sha = hashlib.sha256()
    buffer = bytearray()
    size = 0
    upload_id: str | None = None
    parts: list[dict] = []
    resolved_type: str | None = content_type if isinstance(content_type, str) else None

    def flush() -> None:
        nonlocal upload_id
        if upload_id is None:
            upload_id = s3.create_multipart_upload(Bucket=bucket(), Key=key, ContentType=resolved_type)[
                "UploadId"
            ]
        number = len(parts) + 1
        etag = s3.upload_part(Bucket=bucket(), Key=key, UploadId=upload_id, PartNumber=number,
                              Body=bytes(buffer))["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
        buffer.clear()

    try:
        for chunk in chunks:
            if not chunk:
                continue
            if resolved_type is None:
                resolved_type = content_type(bytes(chunk[:64]))  # type: ignore[operator]
            size += len(chunk)
            if size > max_bytes:
                raise InputTooLarge(f"The content is larger than {max_bytes} bytes.", field=field)
            sha.update(chunk)
            buffer.extend(chunk)
            if len(buffer) >= part_size:
                flush()
        if resolved_type is None:
            raise EmptyContent("The content is empty.", field=field)
        if upload_id is None:
            # Small object: one PUT, no multipart bookkeeping.
            s3.put_object(Bucket=bucket(), Key=key, Body=bytes(buffer), ContentType=resolved_type)
        else:
            if buffer:
                flush()
            s3.complete_multipart_upload(
                Bucket=bucket(), Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
    except BaseException:
        if upload_id is not None:
            s3.abort_multipart_upload(Bucket=bucket(), Key=key, UploadId=upload_id)
        raise
    return StoredObject(key, size, sha.hexdigest(), resolved_type)


def head(key: str) -> dict | None:
    s3 = client("s3")
    try:
        return s3.head_object(Bucket=bucket(), Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise


def delete(key: str) -> None:
    client("s3").delete_object(Bucket=bucket(), Key=key)


def sha256_of(key: str) -> str:
    """Hash a stored object by streaming it (used only to recover after a crash)."""
    body = client("s3").get_object(Bucket=bucket(), Key=key)["Body"]
    sha = hashlib.sha256()
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        sha.update(chunk)
    return sha.hexdigest()


def presign_get(key: str, ttl_seconds: int) -> tuple[str, str]:
    url = client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket(), "Key": key}, ExpiresIn=ttl_seconds
    )
    return url, iso(utc_now() + timedelta(seconds=ttl_seconds))


def presign_put(key: str, content_type: str, size_bytes: int, ttl_seconds: int) -> str:
    """A presigned PUT whose Content-Type and Content-Length are signed: S3 refuses any other body."""
    return client("s3").generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket(), "Key": key, "ContentType": content_type, "ContentLength": size_bytes},
        ExpiresIn=ttl_seconds,
    )


def read_range(key: str, start: int, end: int, *, s3: Any = None) -> bytes:
    """Bytes START..END (inclusive) of an object, by one ranged GET."""
    response = (s3 or client("s3")).get_object(Bucket=bucket(), Key=key, Range=f"bytes={start}-{end}")
    return response["Body"].read()


class SourceChanged(Exception):
    """The copy's source is no longer the object (ETag) it was checked as."""


class SourceGone(Exception):
    """The copy's source does not exist (any more)."""


def copy_if_unchanged(source_key: str, key: str, *, etag: str, content_type: str) -> None:
    """S3 CopyObject within the bucket, only if the source still has ETAG (needs s3:GetObject on
    the source and s3:PutObject on KEY)."""
    from botocore.exceptions import ClientError

    try:
        client("s3").copy_object(
            Bucket=bucket(), Key=key, CopySource={"Bucket": bucket(), "Key": source_key},
            CopySourceIfMatch=etag, MetadataDirective="REPLACE", ContentType=content_type)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if error.get("Code") in {"PreconditionFailed", "412"} or status == 412:
            raise SourceChanged(source_key) from exc
        if error.get("Code") in {"NoSuchKey", "404", "NotFound"}:
            raise SourceGone(source_key) from exc
        raise


def is_storage_error(exc: BaseException) -> bool:
    """An S3/SDK failure (throttling, a 5xx, a network error), as opposed to a fact about bytes."""
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, (BotoCoreError, ClientError))

