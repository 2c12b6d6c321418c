"""Generate the bundled sample inputs: `character.png` and `motion.mp4`.

Run as `python samples/make_samples.py` (or `make samples`). The output is deterministic:
everything is drawn with Pillow from fixed coordinates and encoded with fixed settings, so
re-running it only rewrites the same pictures.

- `character.png`: a drawn cartoon character (head, torso, arms, legs) on a plain
  background, 480x720. Fits every provider's image limits (each side >= 300 px, aspect
  ratio inside 1:2.5..2.5:1, well under 10 MB).
- `motion.mp4`: 4 s, 360x640, 15 fps, H.264 yuv420p + mono AAC beeps; a stick figure that
  waves and bounces, i.e. a motion reference video within every provider's 3..10 s limit.
"""

from __future__ import annotations

import math
from array import array
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent

CHAR_SIZE = (480, 720)
VIDEO_SIZE = (360, 640)
FPS = 15
SECONDS = 4
SAMPLE_RATE = 44100
BEAT_HZ = 2.0  # beeps and bounces per second

Point = tuple[float, float]


# --------------------------------------------------------------------------- character


def draw_character(path: Path) -> None:
    """A friendly front-facing character: what the models expect (head, shoulders, torso)."""
    w, h = CHAR_SIZE
    img = Image.new("RGB", (w, h), (226, 236, 245))
    d = ImageDraw.Draw(img)
    skin, shirt, pants, hair = (241, 194, 155), (220, 70, 60), (50, 70, 120), (70, 45, 30)
    cx = w // 2
    # legs and shoes
    d.rounded_rectangle((cx - 70, 430, cx - 12, 650), radius=20, fill=pants)
    d.rounded_rectangle((cx + 12, 430, cx + 70, 650), radius=20, fill=pants)
    d.ellipse((cx - 90, 630, cx - 5, 670), fill=(40, 40, 40))
    d.ellipse((cx + 5, 630, cx + 90, 670), fill=(40, 40, 40))
    # arms (behind the torso), hands
    d.line([(cx - 80, 250), (cx - 150, 340), (cx - 160, 440)], fill=shirt, width=38, joint="curve")
    d.line([(cx + 80, 250), (cx + 150, 340), (cx + 160, 440)], fill=shirt, width=38, joint="curve")
    d.ellipse((cx - 185, 425, cx - 135, 475), fill=skin)
    d.ellipse((cx + 135, 425, cx + 185, 475), fill=skin)
    # torso with a star on the shirt
    d.rounded_rectangle((cx - 95, 225, cx + 95, 460), radius=45, fill=shirt)
    d.polygon(_star((cx, 320), 38, 16), fill=(255, 220, 80))
    # neck, head, hair, face
    d.rectangle((cx - 22, 190, cx + 22, 235), fill=skin)
    d.ellipse((cx - 85, 40, cx + 85, 215), fill=skin)
    d.chord((cx - 90, 30, cx + 90, 170), start=180, end=360, fill=hair)
    d.ellipse((cx - 45, 110, cx - 25, 132), fill=(30, 30, 30))
    d.ellipse((cx + 25, 110, cx + 45, 132), fill=(30, 30, 30))
    d.arc((cx - 40, 130, cx + 40, 185), start=20, end=160, fill=(150, 50, 50), width=6)
    d.ellipse((cx - 70, 145, cx - 45, 165), fill=(240, 160, 150))
    d.ellipse((cx + 45, 145, cx + 70, 165), fill=(240, 160, 150))
    img.save(path, format="PNG", optimize=True)


def _star(center: Point, outer: float, inner: float) -> list[Point]:
    cx, cy = center
    pts = []
    for i in range(10):
        r = outer if i % 2 == 0 else inner
        a = -math.pi / 2 + i * math.pi / 5
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


# --------------------------------------------------------------------------- motion video


def stick_figure_frame(t: float) -> Image.Image:
    """The dancer at time `t`: bouncing body, one arm waving, the other pumping, legs stepping."""
    w, h = VIDEO_SIZE
    img = Image.new("RGB", (w, h), (30, 34, 48))
    d = ImageDraw.Draw(img)
    # a scrolling floor so the background moves too
    floor = 520
    d.rectangle((0, floor, w, h), fill=(60, 66, 84))
    for i in range(-1, 8):
        x = (i * 60 - int(t * 90) % 60) + 30
        d.line([(x, floor), (x - 40, h)], fill=(80, 88, 110), width=3)

    beat = math.sin(2 * math.pi * BEAT_HZ * t)
    bounce = 18 * abs(beat)
    sway = 25 * math.sin(2 * math.pi * 0.5 * t)
    hip: Point = (w / 2 + sway, 360 - bounce)
    neck: Point = (hip[0] + 0.3 * sway, hip[1] - 130)
    head_c: Point = (neck[0], neck[1] - 45)

    wave = math.radians(-150 + 45 * math.sin(2 * math.pi * 1.5 * t))  # raised, waving arm
    pump = math.radians(60 + 50 * beat)  # lower arm pumping on the beat
    step = 0.45 * math.sin(2 * math.pi * 1.0 * t)

    white, limb = (245, 245, 245), 12
    _limb(d, neck, wave, 70, wave + 0.5, 60, white, limb)
    _limb(d, neck, math.pi - pump, 65, math.pi - pump - 0.6, 55, white, limb)
    _limb(d, hip, math.pi / 2 - 0.35 + step, 85, math.pi / 2 - 0.1 + step, 80, white, limb)
    _limb(d, hip, math.pi / 2 + 0.35 + step, 85, math.pi / 2 + 0.1 + step, 80, white, limb)
    d.line([neck, hip], fill=white, width=limb + 4)
    r = 34
    d.ellipse((head_c[0] - r, head_c[1] - r, head_c[0] + r, head_c[1] + r), fill=white)
    # a beat indicator so the audio beeps have a visible counterpart
    if abs(beat) > 0.9:
        d.ellipse((w - 50, 30, w - 20, 60), fill=(255, 200, 60))
    return img


def _limb(
    d: ImageDraw.ImageDraw, origin: Point, a1: float, l1: float, a2: float, l2: float,
    color: tuple[int, int, int], width: int,
) -> None:
    """Two-segment limb from `origin`: angles in radians (0 = right, pi/2 = down)."""
    j = (origin[0] + l1 * math.cos(a1), origin[1] + l1 * math.sin(a1))
    e = (j[0] + l2 * math.cos(a2), j[1] + l2 * math.sin(a2))
    d.line([origin, j, e], fill=color, width=width, joint="curve")
    rr = width * 0.9
    d.ellipse((e[0] - rr, e[1] - rr, e[0] + rr, e[1] + rr), fill=color)


def beep_samples(n_samples: int) -> array:
    """Mono s16 PCM: a short two-tone beep on every beat, silence in between."""
    out = array("h", bytes(2 * n_samples))
    beat_len = int(SAMPLE_RATE / BEAT_HZ)
    beep_len = int(0.12 * SAMPLE_RATE)
    for i in range(n_samples):
        k, pos = divmod(i, beat_len)
        if pos < beep_len:
            freq = 880.0 if k % 4 == 0 else 660.0
            env = min(1.0, pos / 200, (beep_len - pos) / 200)  # ramps avoid clicks
            out[i] = int(9000 * env * math.sin(2 * math.pi * freq * i / SAMPLE_RATE))
    return out


def write_motion_video(path: Path) -> None:
    n_frames = FPS * SECONDS
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height = VIDEO_SIZE
        vs.pix_fmt = "yuv420p"
        # threads=1 keeps the encoder output byte-for-byte reproducible
        vs.options = {"crf": "30", "preset": "slow", "threads": "1", "g": str(FPS * 2)}
        a_s = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        a_s.bit_rate = 64000

        # audio is encoded alongside each video frame so the file comes out interleaved
        pcm = beep_samples(SAMPLE_RATE * SECONDS)
        per_frame = SAMPLE_RATE // FPS
        for i in range(n_frames):
            frame = av.VideoFrame.from_image(stick_figure_frame(i / FPS)).reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(vs.encode(frame))
            start = i * per_frame
            part = pcm[start : start + per_frame]
            af = av.AudioFrame(format="s16", layout="mono", samples=len(part))
            af.planes[0].update(part.tobytes())
            af.sample_rate, af.pts, af.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
            out.mux(a_s.encode(af))
        out.mux(vs.encode(None))
        out.mux(a_s.encode(None))


def main() -> None:
    png, mp4 = HERE / "character.png", HERE / "motion.mp4"
    draw_character(png)
    write_motion_video(mp4)
    for p in (png, mp4):
        print(f"wrote {p} ({p.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
