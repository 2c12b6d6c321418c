"""Showing a job while it runs: one live line with a bar on a terminal, plain lines otherwise.

On a TTY the line is redrawn in place (`\\r`) at every poll: status (the job's `stage` when the
API gives one: placing, provider_queued, provider_running, transferring), provider, a bar of the
provider's progress, the percentage and the elapsed time. A provider that reports no progress
gets no bar that means nothing: the elapsed time against its typical run time
(`typical_run_seconds`) instead. Without stages (an older API) a moving block stands in.
Anywhere else (CI logs, pipes, files) a line is printed only when the status, stage, provider
or progress changes, so a log holds no thousand identical lines.
Plain ASCII on purpose: a terminal with a legacy encoding must not turn the bar into errors.
"""

from __future__ import annotations

import shutil
from typing import Any, TextIO

BAR_WIDTH = 24


def elapsed_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


def bar(fraction: float | None, tick: int, width: int = BAR_WIDTH) -> str:
    """`[######------]` for a known fraction; a block sweeping back and forth for an unknown one."""
    if fraction is None:
        block = 4
        span = width - block
        pos = tick % (2 * span) if span > 0 else 0
        pos = pos if pos <= span else 2 * span - pos
        return "[" + " " * pos + "=" * block + " " * (width - block - pos) + "]"
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _progress(job: dict[str, Any]) -> int | None:
    value = job.get("progress")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


TERMINAL = frozenset({"succeeded", "failed", "canceled"})


def _stage(job: dict[str, Any]) -> str | None:
    stage = job.get("stage")
    return stage if isinstance(stage, str) and stage != job.get("status") else None


def _typical(job: dict[str, Any]) -> str | None:
    """`usually 1m00s-3m00s` for a job at a provider that reports no progress, else None."""
    typical = job.get("typical_run_seconds")
    if (job.get("status") in TERMINAL or _progress(job) is not None or job.get("provider_reports_progress")
            or not isinstance(typical, list) or len(typical) != 2
            or _stage(job) not in ("provider_queued", "provider_running")):
        return None
    return f"usually {elapsed_text(typical[0])}-{elapsed_text(typical[1])}"


def job_line(job: dict[str, Any], elapsed: float, tick: int = 0, columns: int = 100) -> str:
    """The live (TTY) line; the bar shrinks to fit `columns` (and goes in a very narrow one)."""
    progress = _progress(job)
    status = job.get("status") or "?"
    if status == "succeeded":
        progress = 100
    fraction = None if progress is None else progress / 100
    pct = f"{progress:>3}%" if progress is not None else "  -%"
    stage = _stage(job)
    label = f"{stage:<16}" if stage else f"{status:<9}"
    head = f"{job.get('id', '?')}  {label} {job.get('provider') or '-':<9} "
    typical = _typical(job)
    if typical is not None or (stage and progress is None):
        # No progress to draw: the time it has taken, against what is usual when known.
        return f"{head}{elapsed_text(elapsed)}" + (f" ({typical})" if typical else "")
    tail = f"{pct}  {elapsed_text(elapsed)}"
    room = columns - len(head) - len(tail) - 3
    if room < 8:
        return f"{head}{tail}"
    return f"{head}{bar(fraction, tick, min(BAR_WIDTH, room))} {tail}"


def job_plain_line(job: dict[str, Any], elapsed: float) -> str:
    """A plain (non-TTY) line."""
    progress = _progress(job)
    pct = f"{progress}%" if progress is not None else "-"
    stage = _stage(job)
    typical = _typical(job)
    return (f"{job.get('id', '?')}: {job.get('status') or '?'}{f' ({stage})' if stage else ''}  "
            f"provider={job.get('provider') or '-'}  progress={pct}  elapsed={elapsed_text(elapsed)}"
            + (f"  ({typical})" if typical else ""))


class LiveLine:
    """A line redrawn in place on a terminal; `message` prints a normal line above it."""

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None and hasattr(stream, "isatty") else bool(tty)
        self.width = 0

    def columns(self) -> int:
        return max(20, shutil.get_terminal_size((100, 24)).columns - 1)

    def show(self, text: str) -> None:
        if not self.tty:
            return
        text = text[: self.columns()]
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def end(self) -> None:
        """Keep the last live line on screen and move below it."""
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0

    def message(self, text: str) -> None:
        self.clear()
        print(text, file=self.stream, flush=True)


class JobProgress:
    """Feed it every job resource seen while waiting; it draws what a person should see."""

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.line = LiveLine(stream, tty)
        self.tick = 0
        self._last_key: tuple[Any, ...] | None = None

    @property
    def tty(self) -> bool:
        return self.line.tty

    def update(self, job: dict[str, Any], elapsed: float) -> None:
        self.tick += 1
        if self.tty:
            self.line.show(job_line(job, elapsed, self.tick, self.line.columns()))
            return
        key = (job.get("status"), job.get("stage"), job.get("provider"), _progress(job))
        if key != self._last_key:
            self._last_key = key
            self.line.message(job_plain_line(job, elapsed))

    def message(self, text: str) -> None:
        self.line.message(text)

    def end(self) -> None:
        self.line.end()


class DownloadProgress:
    """Bytes received so far on a terminal; nothing elsewhere (the final line says it all)."""

    def __init__(self, stream: TextIO, label: str, tty: bool | None = None) -> None:
        self.line = LiveLine(stream, tty)
        self.label = label

    def __call__(self, done: int, total: int | None) -> None:
        if not self.line.tty:
            return
        if not total:
            self.line.show(f"{self.label}  {size_text(done)}")
            return
        tail = f"{100 * done // total:>3}%  {size_text(done)} / {size_text(total)}"
        room = min(BAR_WIDTH, self.line.columns() - len(self.label) - len(tail) - 5)
        shown = f"{bar(done / total, 0, room)} " if room >= 8 else ""
        self.line.show(f"{self.label}  {shown}{tail}")

    def end(self) -> None:
        self.line.clear()
