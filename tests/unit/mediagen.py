"""Small media made on the fly (Pillow, PyAV) for the input tests, cached for the session.

Videos are tiny on purpose: flat frames at a low frame rate encode to a few KB whatever
their duration, so a 31 s clip costs as little as a 2 s one.
"""

from __future__ import annotations

import base64
import io
import os
from fractions import Fraction
from functools import cache


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@cache
def image(width: int = 480, height: int = 720, fmt: str = "PNG") -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (200, 220, 240))
    box = (width // 4, height // 4, 3 * width // 4, 3 * height // 4)
    ImageDraw.Draw(img).ellipse(box, fill=(220, 60, 50))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


@cache
def video(seconds: float = 4, width: int = 320, height: int = 480, *, fps: int = 2, container: str = "mp4",
          faststart: bool = True, audio: bool = False, noise: bool = False) -> bytes:
    """An H.264 clip of `seconds` (frame count / fps). `noise` makes it large (for read-cost
    tests); `faststart=False` leaves the moov atom at the end, as ffmpeg does by default."""
    import tempfile


    options = {"movflags": "+faststart"} if faststart and container in ("mp4", "mov") else {}
    # A real file: faststart rewrites it in a second pass, which a BytesIO cannot do.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "clip")
        _encode(path, seconds, width, height, fps, container, options, audio, noise)
        with open(path, "rb") as f:
            return f.read()


def _encode(path: str, seconds: float, width: int, height: int, fps: int, container: str, options: dict,
            audio: bool, noise: bool) -> None:
    import av

    with av.open(path, mode="w", format=container, options=options) as muxer:
        stream = muxer.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps * 2), **({"crf": "0"} if noise else {})}
        audio_stream = None
        if audio:
            audio_stream = muxer.add_stream("aac", rate=8000, layout="mono")
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                size = plane.buffer_size
                plane.update(os.urandom(size) if noise else bytes([i * 9 % 256]) * size)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            muxer.mux(stream.encode(frame))
            if audio_stream is not None:
                _mux_silence(muxer, audio_stream, i, fps)
        muxer.mux(stream.encode(None))
        if audio_stream is not None:
            muxer.mux(audio_stream.encode(None))


def _mux_silence(muxer, stream, index: int, fps: int) -> None:
    import av

    samples = 8000 // fps
    frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
    frame.planes[0].update(bytes(2 * samples))
    frame.sample_rate, frame.pts, frame.time_base = 8000, index * samples, Fraction(1, 8000)
    muxer.mux(stream.encode(frame))


@cache
def audio_only_mp4(seconds: float = 4) -> bytes:
    """An MP4 (ftyp and all) holding only an AAC track: passes a sniff, fails the probe."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as muxer:
        stream = muxer.add_stream("aac", rate=8000, layout="mono")
        for i in range(round(seconds * 10)):
            _mux_silence(muxer, stream, i, 10)
        muxer.mux(stream.encode(None))
    return out.getvalue()


# An MP3 as it starts on disk: an ID3v2 tag, then MPEG audio frame headers.
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400)
TEXT = b"these are not the pixels you are looking for\n" * 4
