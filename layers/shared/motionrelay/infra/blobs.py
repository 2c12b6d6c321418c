"""S3 storage: bounded-memory streaming uploads with sha256, presigned GETs.

`stream_upload` holds at most `PARTS_IN_FLIGHT` + 1 parts (5 MiB each) in memory whatever the
object's size: chunks are appended to a part buffer; a full buffer is handed to a small
thread pool that sends it (and one more thread that hashes the parts in their order)
while the next part is read, and the reader waits for the oldest
part in flight before it fills another one beyond the bound. Reading, sniffing and the
size limit stay on the caller's thread; a failure anywhere aborts the multipart upload.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from motionrelay.domain.errors import InputTooLarge, UnsupportedMedia
from motionrelay.domain.job import iso, utc_now
from motionrelay.infra.aws import client
from motionrelay.settings import get_settings

# S3's minimum part (but the last) is 5 MiB. Parts sent at once: bench/transfer.py measures
# 8 x 5 MiB within ~45 MB of peak RSS growth (boto3's managed transfer, 10 x 8 MiB, ~125 MB).
PART_SIZE = 5 * 1024 * 1024
PARTS_IN_FLIGHT = 8
MAX_PARTS = 10_000
# Per-part CRC32s, combined by S3 into the object's checksum, as boto3's managed transfer
# does (botocore computes them anyway); S3 then checks every part as it arrives.
CHECKSUM = "CRC32"


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
    parts_in_flight: int = PARTS_IN_FLIGHT,
) -> StoredObject:
    """Upload an iterable of chunks to `key`. `content_type` may be a function of the first
    bytes (sniffing), which may raise to refuse the content before anything is stored."""
    s3 = client("s3")
    sha = hashlib.sha256()
    part_size = max(part_size, -(-max_bytes // MAX_PARTS))  # S3 takes at most 10,000 parts
    buffer = bytearray()
    size = 0
    upload_id: str | None = None
    in_flight: deque[tuple[Future, Future]] = deque()  # (upload, hash) of each part still held
    parts: list[dict] = []
    senders: ThreadPoolExecutor | None = None
    hasher: ThreadPoolExecutor | None = None  # one worker: parts are hashed in their order
    resolved_type: str | None = content_type if isinstance(content_type, str) else None

    def send(number: int, body: bytearray) -> dict:
        sent = s3.upload_part(Bucket=bucket(), Key=key, UploadId=upload_id, PartNumber=number,
                              Body=body, ChecksumAlgorithm=CHECKSUM)
        part = {"PartNumber": number, "ETag": sent["ETag"]}
        if sent.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = sent["ChecksumCRC32"]
        return part

    def settle_oldest() -> None:
        upload, hashed = in_flight.popleft()
        hashed.result()
        parts.append(upload.result())

    def flush() -> None:
        nonlocal upload_id, senders, hasher, buffer
        if upload_id is None:
            upload_id = s3.create_multipart_upload(Bucket=bucket(), Key=key, ContentType=resolved_type,
                                                   ChecksumAlgorithm=CHECKSUM)["UploadId"]
            senders = ThreadPoolExecutor(max_workers=parts_in_flight, thread_name_prefix="s3-part")
            hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-sha256")
        while len(in_flight) >= parts_in_flight:  # the memory bound: wait for the oldest part
            settle_oldest()
        number = len(parts) + len(in_flight) + 1
        # The full buffer itself is hashed and sent (no copy); the next part fills a new one.
        in_flight.append((senders.submit(send, number, buffer),  # type: ignore[union-attr]
                          hasher.submit(sha.update, buffer)))  # type: ignore[union-attr]
        buffer = bytearray()

    try:
        for chunk in chunks:
            if not chunk:
                continue
            if resolved_type is None:
                resolved_type = content_type(bytes(chunk[:64]))  # type: ignore[operator]
            size += len(chunk)
            if size > max_bytes:
                raise InputTooLarge(f"The content is larger than {max_bytes} bytes.", field=field)
            buffer.extend(chunk)
            if len(buffer) >= part_size:
                flush()
        if resolved_type is None:
            raise EmptyContent("The content is empty.", field=field)
        if upload_id is None:
            # Small object: one PUT, no multipart bookkeeping.
            sha.update(buffer)
            s3.put_object(Bucket=bucket(), Key=key, Body=bytes(buffer), ContentType=resolved_type)
        else:
            if buffer:
                flush()
            while in_flight:
                settle_oldest()
            s3.complete_multipart_upload(
                Bucket=bucket(), Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
    except BaseException:
        if upload_id is not None:
            wait([future for pair in in_flight for future in pair])  # nothing still sending
            s3.abort_multipart_upload(Bucket=bucket(), Key=key, UploadId=upload_id)
        raise
    finally:
        for pool in (senders, hasher):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
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

