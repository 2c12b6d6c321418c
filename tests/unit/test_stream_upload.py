"""blobs.stream_upload sends parts in parallel, bounded, in order, and aborts on failure."""

from __future__ import annotations

import hashlib
import threading

import pytest

MIB = 1024 * 1024


def _source(total: int, chunk: int = 256 * 1024):
    head = b"\x00\x00\x00\x18ftypmp42"
    yield head
    sent = len(head)
    while sent < total:
        data = bytes([(sent // chunk) % 251]) * chunk  # every chunk differs: order shows
        sent += len(data)
        yield data


def test_parts_go_out_in_parallel_within_the_bound_and_in_order(aws, monkeypatch):
    from motionrelay.infra import blobs
    from motionrelay.infra.aws import client

    s3 = client("s3")
    real = s3.upload_part
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def counting_upload_part(**kwargs):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            return real(**kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(s3, "upload_part", counting_upload_part)
    expected = b"".join(_source(27 * MIB))
    stored = blobs.stream_upload("outputs/p.mp4", _source(27 * MIB), content_type="video/mp4",
                                 max_bytes=64 * MIB, part_size=5 * MIB, parts_in_flight=2)

    assert 1 <= state["peak"] <= 2
    assert stored.size_bytes == len(expected)
    assert stored.sha256 == hashlib.sha256(expected).hexdigest()
    body = s3.get_object(Bucket=blobs.bucket(), Key="outputs/p.mp4")["Body"].read()
    assert body == expected  # parts completed in their order


def test_a_failing_part_aborts_the_upload(aws, monkeypatch):
    from motionrelay.infra import blobs
    from motionrelay.infra.aws import client

    s3 = client("s3")
    real = s3.upload_part
    aborted: list[str] = []
    real_abort = s3.abort_multipart_upload

    def failing_upload_part(**kwargs):
        if kwargs["PartNumber"] == 3:
            raise ConnectionError("part 3 broke")
        return real(**kwargs)

    def spy_abort(**kwargs):
        aborted.append(kwargs["UploadId"])
        return real_abort(**kwargs)

    monkeypatch.setattr(s3, "upload_part", failing_upload_part)
    monkeypatch.setattr(s3, "abort_multipart_upload", spy_abort)
    with pytest.raises(ConnectionError):
        blobs.stream_upload("outputs/f.mp4", _source(40 * MIB), content_type="video/mp4",
                            max_bytes=64 * MIB, part_size=5 * MIB, parts_in_flight=2)
    assert len(aborted) == 1
    assert s3.list_multipart_uploads(Bucket=blobs.bucket()).get("Uploads", []) == []


def test_too_large_aborts_with_parts_in_flight(aws):
    from motionrelay.domain.errors import InputTooLarge
    from motionrelay.infra import blobs
    from motionrelay.infra.aws import client

    with pytest.raises(InputTooLarge):
        blobs.stream_upload("outputs/big.mp4", _source(30 * MIB), content_type="video/mp4",
                            max_bytes=20 * MIB, part_size=5 * MIB, parts_in_flight=3)
    assert client("s3").list_multipart_uploads(Bucket=blobs.bucket()).get("Uploads", []) == []
