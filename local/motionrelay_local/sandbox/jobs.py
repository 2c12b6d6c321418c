"""Job simulation shared by every provider: timed phases, input download, real render.

A job walks through provider-neutral phases

    pending -> queued -> running -> succeeded | failed

each non-final phase lasting at least `state_seconds`; providers map phases to their own
status names. While `running`, the inputs are downloaded (streamed to disk) and checked,
the MP4 is rendered, and the job only then turns final, so a caller never sees a
success whose file is not there yet. Each job has its own worker thread; renders are
limited to one per CPU so a burst of jobs cannot starve the HTTP server.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .render import ImageProbe, MediaError, VideoProbe, probe_image, probe_video, render_motion_video

log = logging.getLogger(__name__)

PHASES = ("pending", "queued", "running")
FINAL = ("succeeded", "failed")
DOWNLOAD_TIMEOUT = 30.0  # Kie documents a 30 s fetch timeout for remote files
CHUNK = 256 * 1024


class InputError(Exception):
    """An input is unusable (download, decode or provider limit); message is user-facing."""


@dataclass(frozen=True)
class InputSpec:
    field: str  # the request field it came from, for error messages ("input_urls[0]")
    url: str
    max_bytes: int


@dataclass(frozen=True)
class JobSpec:
    """What a provider asks the simulator to do for one accepted submit."""

    image: InputSpec
    video: InputSpec
    output_name: str  # file name under the provider's /files/
    keep_sound: bool = True
    max_height: int | None = None
    state_seconds: float = 0.5
    fail_message: str | None = None  # the fail_task knob: fail instead of rendering
    check_inputs: Callable[[ImageProbe, VideoProbe], None] | None = None  # raises InputError
    on_finish: Callable[[SimJob], None] | None = None  # e.g. send the callback
    # Called (from the job's thread) after each non-final phase begins: providers that call back
    # on every status change (Kling) or on start (Replicate). It must not block for long.
    on_phase: Callable[[SimJob], None] | None = None


@dataclass(eq=False)
class SimJob:
    """State of one simulated task; read it under `lock` for a consistent view."""

    task_id: str
    provider: str
    request: dict[str, Any]
    state_names: dict[str, str]  # phase -> the provider's status name
    callback_url: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # knobs as they were at submit
    phase: str = "pending"
    created_at: float = field(default_factory=time.time)
    updated_at: float = 0.0
    started_at: float | None = None  # entered `running`
    finished_at: float | None = None
    output_path: Path | None = None
    output_url: str | None = None
    media: dict[str, Any] | None = None  # render_motion_video's info
    fail_kind: str = ""  # "task" (knob), "input" or "internal"
    fail_message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # provider bookkeeping
    cancel_requested: bool = False  # a provider's cancel call (fal, Replicate): stop before running
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    settled: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at

    @property
    def state(self) -> str:
        """The provider-facing status name (e.g. Kie's "generating")."""
        return self.state_names.get(self.phase, self.phase)

    @property
    def done(self) -> bool:
        return self.phase in FINAL

    def request_cancel(self, *, running_too: bool = False) -> bool:
        """Ask the job to stop: honoured while it has not started running (or, with
        `running_too`, until it is final: the render still finishes, its result is dropped).
        Returns whether the request was taken."""
        with self.lock:
            if self.done or (self.phase == "running" and not running_too):
                return False
            self.cancel_requested = True
            return True


class JobRunner:
    def __init__(self, workdir: Path, stopping: threading.Event) -> None:
        self.workdir = workdir
        self.stopping = stopping
        self.render_slots = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
        self._threads: list[threading.Thread] = []

    def run(self, job: SimJob, spec: JobSpec, output_dir: Path, output_url: str) -> None:
        t = threading.Thread(
            target=self._work, args=(job, spec, output_dir, output_url),
            name=f"sandbox-job-{job.task_id}", daemon=True,
        )
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))

    # --------------------------------------------------------------- worker

    def _work(self, job: SimJob, spec: JobSpec, output_dir: Path, output_url: str) -> None:
        try:
            self._walk(job, spec, output_dir, output_url)
        except Exception:  # noqa: BLE001 - a worker must never die silently
            if not self.stopping.is_set():
                log.exception("sandbox job %s crashed", job.task_id)
                self._finish(job, fail=("internal", "internal error"))
        finally:
            job.settled.set()

    def _walk(self, job: SimJob, spec: JobSpec, output_dir: Path, output_url: str) -> None:
        for phase in PHASES[:-1]:
            self._set_phase(job, phase)
            if spec.on_phase is not None:
                spec.on_phase(job)
            if self.stopping.wait(spec.state_seconds):
                return
        with job.lock:
            canceled = job.cancel_requested
        if canceled or not self._set_phase(job, "running"):
            self._finish(job, fail=("canceled", "canceled"))
            if spec.on_finish is not None and not self.stopping.is_set():
                spec.on_finish(job)  # a canceled task is final too (Replicate calls back)
            return
        if spec.on_phase is not None:
            spec.on_phase(job)
        started = time.monotonic()
        if spec.fail_message is not None:
            outcome: dict[str, Any] = {"fail": ("task", spec.fail_message)}
        else:
            outcome = self._produce(job, spec, output_dir, output_url)
        # a phase lasts at least state_seconds even when the render was quicker
        if self.stopping.wait(max(0.0, spec.state_seconds - (time.monotonic() - started))):
            return
        with job.lock:
            canceled = job.cancel_requested
        self._finish(job, **(outcome if not canceled else {"fail": ("canceled", "canceled")}))
        if spec.on_finish is not None and not self.stopping.is_set():
            spec.on_finish(job)

    def _produce(self, job: SimJob, spec: JobSpec, output_dir: Path, output_url: str) -> dict[str, Any]:
        scratch = self.workdir / "inputs" / job.task_id
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            image = download(spec.image, scratch / "image")
            video = download(spec.video, scratch / "video")
            img_probe = _probe(spec.image, probe_image, image)
            vid_probe = _probe(spec.video, probe_video, video)
            if spec.check_inputs is not None:
                spec.check_inputs(img_probe, vid_probe)
            out = output_dir / spec.output_name
            partial = out.with_suffix(".part.mp4")
            with self.render_slots:
                info = render_motion_video(
                    image, video, partial, keep_sound=spec.keep_sound, max_height=spec.max_height
                )
            partial.replace(out)  # the file appears complete or not at all
            return {"output": (out, output_url, info)}
        except InputError as exc:
            return {"fail": ("input", str(exc))}
        except MediaError as exc:
            return {"fail": ("input", f"render failed: {exc}")}
        except Exception:  # noqa: BLE001 - becomes a failed task (and its callback), like upstream
            if not self.stopping.is_set():
                log.exception("sandbox job %s: render failed", job.task_id)
            return {"fail": ("internal", "internal error")}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @staticmethod
    def _set_phase(job: SimJob, phase: str) -> bool:
        """Move to `phase`; False (and no move) when a cancel came first for `running`."""
        with job.lock:
            if phase == "running" and job.cancel_requested:
                return False
            job.phase = phase
            job.updated_at = time.time()
            if phase == "running":
                job.started_at = job.updated_at
            return True

    @staticmethod
    def _finish(
        job: SimJob,
        output: tuple[Path, str, dict[str, Any]] | None = None,
        fail: tuple[str, str] | None = None,
    ) -> None:
        with job.lock:
            now = time.time()
            if output is not None:
                job.output_path, job.output_url, job.media = output
                job.phase = "succeeded"
            else:
                job.fail_kind, job.fail_message = fail or ("internal", "internal error")
                job.phase = "failed"
            job.started_at = job.started_at or now
            job.finished_at = job.updated_at = now


def _probe(spec: InputSpec, probe: Callable[[Path], Any], path: Path) -> Any:
    try:
        return probe(path)
    except MediaError as exc:
        raise InputError(f"{spec.field}: {exc}") from None


def download(spec: InputSpec, dest: Path) -> Path:
    """Stream `spec.url` to `dest` (never buffering the whole file); InputError on failure."""
    if not spec.url.lower().startswith(("http://", "https://")):
        raise InputError(f"{spec.field}: unsupported URL scheme")
    written = 0
    try:
        # trust_env=False: local-stack inputs live on loopback and must bypass any proxy
        with httpx.Client(timeout=DOWNLOAD_TIMEOUT, follow_redirects=True, trust_env=False) as client:
            with client.stream("GET", spec.url) as resp:
                if resp.status_code != 200:
                    raise InputError(f"{spec.field}: download failed with HTTP {resp.status_code}")
                with dest.open("wb") as fh:
                    for chunk in resp.iter_bytes(CHUNK):
                        written += len(chunk)
                        if written > spec.max_bytes:
                            raise InputError(
                                f"{spec.field}: file exceeds the {spec.max_bytes // 1_000_000} MB limit"
                            )
                        fh.write(chunk)
    except httpx.HTTPError as exc:
        raise InputError(f"{spec.field}: download failed ({type(exc).__name__})") from None
    if written == 0:
        raise InputError(f"{spec.field}: downloaded file is empty")
    return dest


def check_upstream_limits(img: ImageProbe, vid: VideoProbe, orientation: str, *,
                          image_field: str, video_field: str, min_side: int = 300) -> None:
    """The upstream model's input limits (providers.md section 0), applied once the files are
    fetched: jpeg/png, each side >= `min_side` px, aspect 2:5..5:2, video 3 s to 10 s
    (orientation `image`) or 30 s (`video`). Messages name the request's own fields."""
    if img.format not in ("png", "jpeg"):
        raise InputError(f"{image_field}: unsupported image format {img.format or 'unknown'} (jpeg/png)")
    if min(img.width, img.height) < min_side:
        raise InputError(f"{image_field}: image is {img.width}x{img.height}, "
                         f"each side must be >= {min_side} px")
    if not 0.4 <= img.width / img.height <= 2.5:
        raise InputError(f"{image_field}: image aspect ratio must be between 2:5 and 5:2")
    max_s = 10.0 if orientation == "image" else 30.0
    if vid.duration < 3.0 - 0.05:
        raise InputError(f"{video_field}: video is {vid.duration:.1f} s, minimum is 3 s")
    if vid.duration > max_s + 0.05:
        raise InputError(
            f"{video_field}: video is {vid.duration:.1f} s, maximum is {max_s:.0f} s "
            f"for character_orientation={orientation}"
        )
