"""Probing staged inputs over S3 ranged GETs (moto): facts, read cost, damaged files, limits."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

import mediagen
from conftest import ROOT

KB = 1024


def stage(key: str, data: bytes, content_type: str):
    from motionrelay.infra.blobs import StoredObject, put_bytes

    stored = put_bytes(key, data, content_type)
    return StoredObject(stored.key, stored.size_bytes, stored.sha256, content_type)


class CountingS3:
    """The real (moto) client, with every GET recorded: a probe must only ever ask for ranges."""

    def __init__(self) -> None:
        from motionrelay.infra.aws import client

        self._s3 = client("s3")
        self.ranges: list[str | None] = []

    def get_object(self, **kwargs):
        self.ranges.append(kwargs.get("Range"))
        return self._s3.get_object(**kwargs)


# --------------------------------------------------------------------------- facts


@pytest.mark.parametrize("data,content_type,facts", [
    (mediagen.image(480, 720), "image/png", {"format": "png", "width": 480, "height": 720}),
    (mediagen.image(640, 400, "JPEG"), "image/jpeg", {"format": "jpeg", "width": 640, "height": 400}),
])
def test_image_facts(aws, data, content_type, facts):
    from motionrelay.probe import probe_stored

    got = probe_stored("image", stage("inputs/t/image", data, content_type))
    assert (got.kind, got.format, got.width, got.height, got.size_bytes) == (
        "image", facts["format"], facts["width"], facts["height"], len(data))
    assert got.describe() == facts


@pytest.mark.parametrize("kwargs,content_type,fmt", [
    ({"faststart": True}, "video/mp4", "mp4"),
    ({"faststart": False}, "video/mp4", "mp4"),  # moov atom at the end
    ({"container": "mov"}, "video/quicktime", "mov"),
    ({"container": "matroska"}, "video/x-matroska", "mkv"),
    ({"audio": True}, "video/mp4", "mp4"),
])
def test_video_facts(aws, kwargs, content_type, fmt):
    from motionrelay.probe import probe_stored

    data = mediagen.video(5, 320, 480, **kwargs)
    got = probe_stored("video", stage("inputs/t/video", data, content_type))
    assert (got.kind, got.format, got.width, got.height) == ("video", fmt, 320, 480)
    assert got.duration == pytest.approx(5.0, abs=0.05)
    assert got.has_audio is kwargs.get("audio", False)
    assert got.describe()["duration_seconds"] == pytest.approx(5.0, abs=0.05)


# --------------------------------------------------------------------------- read cost


@pytest.mark.parametrize("faststart", [True, False])
def test_probing_a_video_reads_a_small_part_with_bounded_memory(aws, faststart):
    """A multi-MB clip (noise does not compress) probed through 64 KiB blocks: only ranged
    GETs, at most two blocks held at any time, a small fraction of the file read, whether
    the moov atom comes first or last."""
    from motionrelay.probe import S3RangeReader, probe_video

    data = mediagen.video(3, 640, 480, fps=2, noise=True, faststart=faststart)
    assert len(data) > 2 * 1024 * KB
    stored = stage("inputs/t/big.mp4", data, "video/mp4")
    s3 = CountingS3()
    reader = S3RangeReader(stored.key, stored.size_bytes, block_size=64 * KB, s3=s3)

    facts = probe_video(reader, stored.size_bytes, "video/mp4")

    assert facts.duration == pytest.approx(3.0, abs=0.05) and (facts.width, facts.height) == (640, 480)
    assert s3.ranges and all(r and r.startswith("bytes=") for r in s3.ranges)
    assert reader.max_bytes_held <= 2 * 64 * KB
    assert reader.bytes_fetched < len(data) // 4, (reader.bytes_fetched, len(data))


def test_reader_matches_the_bytes_at_every_offset(aws):
    from motionrelay.probe import S3RangeReader

    data = os.urandom(300 * KB + 17)
    stored = stage("inputs/t/blob", data, "application/octet-stream")
    reader = S3RangeReader(stored.key, len(data), block_size=16 * KB)
    rng = random.Random(7)
    for _ in range(200):
        start, length = rng.randrange(len(data) + 1), rng.randrange(70 * KB)
        reader.seek(start)
        assert reader.read(length) == data[start:start + length]
        assert reader.tell() == min(len(data), start + length)
    assert reader.seek(-10, os.SEEK_END) == len(data) - 10 and reader.read() == data[-10:]
    assert reader.seek(5) == 5 and reader.seek(5, os.SEEK_CUR) == 10
    buffer = bytearray(8)
    assert reader.readinto(buffer) == 8 and bytes(buffer) == data[10:18]
    assert reader.max_bytes_held <= 2 * 16 * KB


def test_a_probe_that_wants_too_much_is_refused(aws, monkeypatch):
    from motionrelay import probe
    from motionrelay.domain.errors import UnsupportedMedia

    monkeypatch.setattr(probe, "FETCH_BUDGET_BYTES", 1 * KB)
    stored = stage("inputs/t/v.mp4", mediagen.video(4), "video/mp4")
    with pytest.raises(UnsupportedMedia) as info:
        probe.probe_stored("video", stored, block_size=4 * KB)
    assert info.value.field == "video"


# --------------------------------------------------------------------------- damaged input


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize("kind,data,content_type", [
    ("image", _cut(mediagen.image()), "image/png"),
    ("image", _cut(mediagen.image(fmt="JPEG")), "image/jpeg"),
    ("image", mediagen.image(fmt="GIF"), "image/png"),  # the probe takes PNG and JPEG only
    ("video", _cut(mediagen.video(4, faststart=True)), "video/mp4"),
    ("video", _cut(mediagen.video(4, faststart=False)), "video/mp4"),
    ("video", mediagen.video(4)[:40] + bytes(3000), "video/mp4"),
    ("video", mediagen.audio_only_mp4(), "video/mp4"),
])
def test_damaged_or_trackless_media_is_unsupported(aws, kind, data, content_type):
    from motionrelay.domain.errors import UnsupportedMedia
    from motionrelay.probe import probe_stored

    with pytest.raises(UnsupportedMedia) as info:
        probe_stored(kind, stage(f"inputs/t/{kind}", data, content_type))
    assert info.value.field == kind and info.value.status == 415


def test_a_decompression_bomb_is_too_large(aws, monkeypatch):
    from PIL import Image

    from motionrelay.domain.errors import InputTooLarge
    from motionrelay.probe import probe_stored

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputTooLarge):
        probe_stored("image", stage("inputs/t/bomb.png", mediagen.image(400, 400), "image/png"))


# --------------------------------------------------------------------------- universal limits


def facts(kind="image", width=480, height=720, duration=None, size=1000, fmt=None):
    from motionrelay.probe import MediaFacts

    return MediaFacts(kind=kind, format=fmt or ("png" if kind == "image" else "mp4"), width=width,
                      height=height, size_bytes=size, duration=duration)


def request(orientation="image"):
    from motionrelay.validation import JobRequest

    return JobRequest(image="x", video="y", character_orientation=orientation)


@pytest.mark.parametrize("media,orientation,code", [
    (facts(width=200, height=200), "image", "input_too_small"),
    (facts(width=300, height=299), "image", "input_too_small"),
    (facts(width=300, height=1200), "image", "bad_aspect_ratio"),
    (facts(width=751, height=300), "image", "bad_aspect_ratio"),
    (facts(size=10 * 1024 * KB + 1), "image", "input_too_large"),
    (facts("video", 1200, 300, 5), "image", "bad_aspect_ratio"),
    (facts("video", 256, 256, 5), "image", "input_too_small"),
    (facts("video", duration=2.0), "image", "input_too_short"),
    (facts("video", duration=12.0), "image", "input_too_long"),
    (facts("video", duration=31.0), "video", "input_too_long"),
])
def test_universal_limits_have_specific_codes(media, orientation, code):
    from motionrelay.domain.errors import MotionRelayError
    from motionrelay.validation import check_media

    with pytest.raises(MotionRelayError) as info:
        check_media(media, request(orientation))
    assert info.value.code == code and info.value.field == media.kind
    assert info.value.status == (413 if code == "input_too_large" else 422)


@pytest.mark.parametrize("media,orientation", [
    (facts(width=300, height=750), "image"),  # exactly 1:2.5
    (facts(width=750, height=300), "image"),
    (facts(size=10 * 1024 * KB), "image"),
    (facts("video", duration=3.0), "image"),
    (facts("video", duration=2.98), "image"),  # container rounding
    (facts("video", duration=10.0), "image"),
    (facts("video", duration=30.0), "video"),
])
def test_media_at_the_limits_passes(media, orientation):
    from motionrelay.validation import check_media

    check_media(media, request(orientation))


# --------------------------------------------------------------------------- cold start


def test_pillow_and_pyav_are_imported_only_by_a_probe():
    code = ("import sys, api_handler, motionrelay.probe, motionrelay.validation, motionrelay.uploads; "
            "heavy = [m for m in ('PIL', 'av') if m in sys.modules]; assert not heavy, heavy")
    paths = os.pathsep.join(str(ROOT / p) for p in ("layers/shared", "functions/api", "local"))
    env = {**os.environ, "PYTHONPATH": paths, "POWERTOOLS_TRACE_DISABLED": "true",
           "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=60)  # noqa: S603


# --------------------------------------------------------------------------- infrastructure errors


def _s3_errors():
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    return [client_error("SlowDown", 503), client_error("InternalError", 500),
            client_error("AccessDenied", 403),
            EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"),
            ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")]


@pytest.mark.parametrize("error", range(5), ids=["throttled", "s3-500", "access-denied", "no-endpoint",
                                                  "read-timeout"])
@pytest.mark.parametrize("kind,data,content_type", [
    ("image", mediagen.image(480, 720), "image/png"),
    ("image", mediagen.image(640, 400, "JPEG"), "image/jpeg"),
    ("video", mediagen.video(4), "video/mp4"),
], ids=["png", "jpeg", "mp4"])
def test_s3_errors_while_probing_propagate_instead_of_judging_the_media(aws, monkeypatch, kind, data,
                                                                       content_type, error):
    """An S3 failure inside the ranged reader is ours (a 500, retried), not `unsupported_media`."""
    from botocore.exceptions import BotoCoreError, ClientError

    from motionrelay import probe
    from motionrelay.domain.errors import MotionRelayError
    from motionrelay.infra.aws import client

    stored = stage(f"inputs/t/{kind}", data, content_type)
    raised = _s3_errors()[error]

    def failing_get_object(**kwargs):
        raise raised

    monkeypatch.setattr(client("s3"), "get_object", failing_get_object)
    # Every read happens inside Pillow/PyAV (the atom walk, outside their error handling, is skipped).
    monkeypatch.setattr(probe, "_atoms_complete", lambda fp, size: True)
    with pytest.raises((ClientError, BotoCoreError)) as info:
        probe.probe_stored(kind, stored)
    assert info.value is raised and not isinstance(info.value, MotionRelayError)


def test_an_s3_error_while_probing_is_a_500_not_a_415(aws, kie, monkeypatch):
    from botocore.exceptions import ClientError

    from motionrelay.infra.aws import client
    from test_api import job_items, post_job, sample_request

    s3 = client("s3")
    real_get_object = s3.get_object

    def throttled(**kwargs):
        if kwargs.get("Range"):  # the probe's ranged GETs
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
        return real_get_object(**kwargs)

    monkeypatch.setattr(s3, "get_object", throttled)
    status, body = post_job(sample_request())
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert kie.calls == [] and job_items() == []
