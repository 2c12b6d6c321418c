"""Produce a real MP4 from a character image and a motion video (the sandbox's "model").

Nothing here imitates Kling's quality; the point is that every simulated provider hands
back a genuine, playable H.264 file whose length, size and audio follow the inputs, so
the gateway's transfer and probing code runs against real media.

The motion video is decoded frame by frame (never held in memory); the character is cut
out of its plain background once, then pasted on each frame with a bounce/sway offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageChops, ImageFilter, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000  # refuse absurd images before decoding them
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
DEFAULT_FPS = Fraction(25)


class MediaError(Exception):
    """An input cannot be read as the media it claims to be (message is user-facing)."""


@dataclass(frozen=True)
class VideoProbe:
    duration: float
    width: int
    height: int
    fps: float
    has_audio: bool


@dataclass(frozen=True)
class ImageProbe:
    width: int
    height: int
    format: str


def probe_image(path: str | Path) -> ImageProbe:
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise MediaError(f"image too large ({img.width}x{img.height})")
            img.verify()
            return ImageProbe(img.width, img.height, (img.format or "").lower())
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise MediaError(f"image could not be decoded: {exc}") from exc


def probe_video(path: str | Path) -> VideoProbe:
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise MediaError("video has no video stream")
            vs = c.streams.video[0]
            duration = _duration_seconds(c, vs)
            fps = float(vs.average_rate or vs.guessed_rate or DEFAULT_FPS)
            return VideoProbe(duration, vs.codec_context.width, vs.codec_context.height, fps,
                              bool(c.streams.audio))
    except av.FFmpegError as exc:
        raise MediaError(f"video could not be decoded: {exc}") from exc


def _duration_seconds(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


# --------------------------------------------------------------------------- rendering


def render_motion_video(
    image_path: str | Path,
    video_path: str | Path,
    out_path: str | Path,
    *,
    keep_sound: bool,
    max_height: int | None = None,
) -> dict[str, Any]:
    """Composite the character onto every frame of the motion video and encode an MP4.

    Output: H.264 yuv420p at the source frame rate and size (scaled down to `max_height`
    if the source is taller, dimensions rounded to even), plus the source audio
    re-encoded to AAC when `keep_sound` and the source has audio. Raises `MediaError`
    when an input cannot be decoded.
    """
    try:
        return _render(Path(image_path), Path(video_path), Path(out_path), keep_sound, max_height)
    except av.FFmpegError as exc:
        raise MediaError(f"video could not be decoded: {exc}") from exc


def _render(image: Path, video: Path, out: Path, keep_sound: bool, max_height: int | None) -> dict[str, Any]:
    with av.open(str(video)) as src:
        if not src.streams.video:
            raise MediaError("video has no video stream")
        v_in = src.streams.video[0]
        v_in.thread_type = "AUTO"
        fps = _frame_rate(v_in)
        width, height = _output_size(v_in.codec_context.width, v_in.codec_context.height, max_height)
        sprite, mask = _character_sprite(image, height)
        a_in = src.streams.audio[0] if keep_sound and src.streams.audio else None

        with av.open(str(out), mode="w", format="mp4", options={"movflags": "+faststart"}) as dst:
            v_out = dst.add_stream("libx264", rate=fps)
            v_out.width, v_out.height, v_out.pix_fmt = width, height, "yuv420p"
            v_out.options = {"preset": "superfast", "crf": "26"}
            audio = _AudioPipe(dst, a_in) if a_in is not None else None

            n = 0
            streams = [v_in] + ([a_in] if a_in is not None else [])
            for packet in src.demux(*streams):
                if packet.stream is v_in:
                    for frame in packet.decode():
                        # bilinear swscale: ~2x cheaper than the default bicubic, same look here
                        img = frame.to_image(interpolation="BILINEAR")
                        img = _compose(img, sprite, mask, n / float(fps), (width, height))
                        out_frame = av.VideoFrame.from_image(img).reformat(
                            format="yuv420p", interpolation="BILINEAR"
                        )
                        out_frame.pts, out_frame.time_base = n, 1 / fps
                        dst.mux(v_out.encode(out_frame))
                        n += 1
                elif audio is not None:
                    audio.feed(packet)
            dst.mux(v_out.encode(None))
            if audio is not None:
                audio.flush()
    if n == 0:
        raise MediaError("video has no decodable frames")
    return {
        "frames": n,
        "duration": round(n / float(fps), 3),
        "width": width,
        "height": height,
        "has_audio": a_in is not None,
    }


class _AudioPipe:
    """Decode -> resample -> AAC encode, one packet at a time."""

    def __init__(self, dst: Any, a_in: Any) -> None:
        layout = "stereo" if a_in.codec_context.layout.nb_channels >= 2 else "mono"
        rate = a_in.codec_context.sample_rate
        rate = rate if rate in AAC_RATES else 48000
        self.dst = dst
        self.stream = dst.add_stream("aac", rate=rate, layout=layout)
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)

    def feed(self, packet: Any) -> None:
        for frame in packet.decode():
            self._encode(self.resampler.resample(frame))

    def flush(self) -> None:
        self._encode(self.resampler.resample(None))
        self.dst.mux(self.stream.encode(None))

    def _encode(self, frames: list[Any]) -> None:
        for f in frames:
            f.pts = None  # let the encoder number samples continuously
            self.dst.mux(self.stream.encode(f))


def _frame_rate(stream: Any) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
    rate = Fraction(rate)
    # a few containers report absurd rates for VFR input; keep the encoder sane
    return rate if 1 <= rate <= 120 else DEFAULT_FPS


def _output_size(w: int, h: int, max_height: int | None) -> tuple[int, int]:
    if max_height and h > max_height:
        w, h = round(w * max_height / h), max_height
    return max(2, w - w % 2), max(2, h - h % 2)


def _character_sprite(path: Path, frame_height: int) -> tuple[Image.Image, Image.Image]:
    """The character scaled to ~60 % of the frame height, with its plain background removed."""
    probe_image(path)  # clean error for non-images before the real decode
    try:
        with Image.open(path) as raw:
            raw.draft("RGB", (raw.width // 2, raw.height // 2))  # cheap downscale for big JPEGs
            img = raw.convert("RGBA")
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"image could not be decoded: {exc}") from exc
    scale = 0.6 * frame_height / img.height
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = img.resize(size, Image.Resampling.BILINEAR)
    mask = ImageChops.multiply(img.getchannel("A"), _background_key(img.convert("RGB")))
    return img.convert("RGB"), mask.filter(ImageFilter.GaussianBlur(1))


def _background_key(rgb: Image.Image) -> Image.Image:
    """Opaque where a pixel differs from the corner colour (a plain backdrop), else clear."""
    corner = rgb.getpixel((0, 0))
    diff = ImageChops.difference(rgb, Image.new("RGB", rgb.size, corner)).convert("L")
    return diff.point(lambda v: 255 if v > 24 else 0)


def _compose(
    frame: Image.Image, sprite: Image.Image, mask: Image.Image, t: float, size: tuple[int, int]
) -> Image.Image:
    if frame.size != size:
        frame = frame.resize(size, Image.Resampling.BILINEAR)
    w, h = size
    # sway sideways and bounce twice a second so the character visibly "dances"
    x = (w - sprite.width) // 2 + round(0.15 * w * math.sin(2 * math.pi * 0.5 * t))
    y = h - sprite.height - round(0.05 * h) - round(0.04 * h * abs(math.sin(2 * math.pi * t)))
    frame.paste(sprite, (x, y), mask)
    return frame
