"""The sandbox renderer: a real H.264 MP4 from the bundled character and motion video."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from motionrelay_local.sandbox import MediaError, render_motion_video

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
IMAGE, VIDEO = SAMPLES / "character.png", SAMPLES / "motion.mp4"


def _streams(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return {
            "codec": vs.codec_context.name,
            "pix_fmt": vs.codec_context.pix_fmt,
            "size": (vs.codec_context.width, vs.codec_context.height),
            "frames": sum(1 for _ in c.decode(video=0)),
            "audio": [a.codec_context.name for a in c.streams.audio],
        }


def test_render_keeps_sound_and_source_geometry(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    info = render_motion_video(IMAGE, VIDEO, out, keep_sound=True)
    assert info["has_audio"] is True
    assert (info["width"], info["height"]) == (360, 640)
    assert info["frames"] == 60 and info["duration"] == pytest.approx(4.0, abs=0.1)
    got = _streams(out)
    assert got == {"codec": "h264", "pix_fmt": "yuv420p", "size": (360, 640), "frames": 60, "audio": ["aac"]}


def test_render_without_sound_and_capped_height(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    info = render_motion_video(IMAGE, VIDEO, out, keep_sound=False, max_height=321)
    assert info["has_audio"] is False
    assert info["height"] == 320 and info["width"] % 2 == 0 and info["width"] == 180
    got = _streams(out)
    assert got["audio"] == [] and got["size"] == (180, 320) and got["frames"] == 60


def test_render_rejects_non_media(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00junk" * 64)
    with pytest.raises(MediaError, match="video"):
        render_motion_video(IMAGE, junk, tmp_path / "a.mp4", keep_sound=True)
    with pytest.raises(MediaError, match="image"):
        render_motion_video(VIDEO, VIDEO, tmp_path / "b.mp4", keep_sound=True)


def test_samples_meet_provider_limits() -> None:
    from PIL import Image

    with Image.open(IMAGE) as img:
        assert img.format == "PNG" and min(img.size) >= 300
        assert 1 / 2.5 <= img.width / img.height <= 2.5
    assert IMAGE.stat().st_size < 200_000 and VIDEO.stat().st_size < 300_000
    with av.open(str(VIDEO)) as c:
        assert c.duration / 1e6 == pytest.approx(4.0, abs=0.1)
        assert c.streams.audio and c.streams.video[0].codec_context.pix_fmt == "yuv420p"
