"""`make demo`: run the bundled sample job through the local API with the `motionrelay` CLI.

Starts a LocalStack on a free port, then runs the CLI's own `submit --wait --out` flow in
process: `samples/character.png` and `samples/motion.mp4` are uploaded through
`/v1/uploads`, the job is followed on one live status line, and the video is streamed to
`out/<job id>.mp4` and checked against the job's size and sha256. The demo then checks that
the object is in the stack's S3 bucket and decodes the MP4. The request is one the chosen
provider can serve (its adapter's capabilities). Expected failures print one clear line and
exit non-zero; they never print a traceback.
"""

from __future__ import annotations

import base64
import os
import shlex
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from motionrelay_local.faults import FaultSpecError
from motionrelay_local.stack import REPO_ROOT, LocalStack
from motionrelay_local.template import TemplateError

SAMPLES = REPO_ROOT / "samples"
OUT_DIR = REPO_ROOT / "out"
IMAGE = SAMPLES / "character.png"
VIDEO = SAMPLES / "motion.mp4"
POLL_SECONDS = 0.5
PROMPT = "The character performs the dance from the reference video."


class DemoError(Exception):
    """An expected failure: its message is all the user needs."""


def data_uri(path: Path, mime: str) -> str:
    if not path.is_file():
        raise DemoError(f"sample input {path} is missing (make samples)")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def sample_request(provider: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "image": data_uri(SAMPLES / "character.png", "image/png"),
        "video": data_uri(SAMPLES / "motion.mp4", "video/mp4"),
        "character_orientation": "image",
        "quality": "std",
        "prompt": PROMPT,
    }
    if provider:
        request["provider"] = provider
    return request


def demo_options(provider: str) -> list[str]:
    """`motionrelay submit` options for a request `provider` can serve, read from its adapter's
    capabilities: std unless it offers only pro, and a prompt only where it takes one (Pixazo
    offers std alone and no prompt; Novita and VibeDream only pro)."""
    from motionrelay.registry import get_adapter

    capabilities = get_adapter(provider).capabilities
    quality = "std" if "std" in capabilities.qualities else sorted(capabilities.qualities)[0]
    options = ["--orientation", "image", "--quality", quality]
    if capabilities.prompt:
        options += ["--prompt", PROMPT]
    return options


def _shown(path: Path) -> str:
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def verify_in_s3(job: dict[str, Any], size: int, stack: LocalStack) -> str:
    """The job's output object is in the stack's bucket with the downloaded size."""
    # The presigned URL is path-style on moto: /<bucket>/<key>.
    path = unquote(urlsplit(job["output"]["url"]).path).lstrip("/")
    bucket, _, key = path.partition("/")
    from botocore.exceptions import ClientError

    s3 = stack.client("s3")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise DemoError(f"the output is not in S3 at s3://{bucket}/{key}: {exc}") from None
    if head["ContentLength"] != size:
        raise DemoError(f"s3://{bucket}/{key} holds {head['ContentLength']} bytes, downloaded {size}")
    return f"s3://{bucket}/{key}"


def describe_mp4(path: Path) -> str:
    """Decode the whole video with PyAV: proof that it is a playable MP4, not just bytes."""
    with path.open("rb") as fh:
        if fh.read(12)[4:8] != b"ftyp":
            raise DemoError(f"{path} is not an MP4 (no ftyp box)")
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DemoError(f"{path} has no video stream")
            video = container.streams.video[0]
            context = video.codec_context
            codec, width, height = context.name, context.width, context.height
            audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
            duration = container.duration / 1_000_000 if container.duration else 0.0
            frames = sum(1 for _ in container.decode(video=0))
    except av.error.FFmpegError as exc:
        raise DemoError(f"{path} does not decode: {exc}") from None
    if frames == 0:
        raise DemoError(f"{path} has no frames")
    sound = f"audio {audio}" if audio else "no audio"
    return f"MP4, {codec} {width}x{height}, {frames} frames, {duration:.1f} s, {sound}"


class _StackOutput:
    """stdout for the demo: the main thread's lines reach the terminal; what the handlers
    print from the stack's threads (JSON logs, EMF metric lines) goes to a log file."""

    def __init__(self, terminal: TextIO, log: TextIO) -> None:
        self.terminal, self.log = terminal, log

    def _target(self) -> TextIO:
        if self.log.closed or threading.current_thread() is threading.main_thread():
            return self.terminal
        return self.log

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.terminal, name)


def run(provider: str | None = None, timeout: float = 180.0) -> int:
    OUT_DIR.mkdir(exist_ok=True)
    log_path = OUT_DIR / "demo-stack.log"
    terminal = sys.stdout
    with log_path.open("w", encoding="utf-8") as log, warnings.catch_warnings():
        # Powertools warns on every invocation that flushes no metric; not the demo's business.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        errors = sys.stderr
        sys.stdout = _StackOutput(terminal, log)
        sys.stderr = _StackOutput(errors, log)  # the functions' own stderr (warnings, tracebacks)
        try:
            code = _run(provider, timeout)
        finally:
            sys.stdout, sys.stderr = terminal, errors
    if code:
        print(f"the handlers' logs are in {log_path}", file=sys.stderr)
    return code


def _run(provider: str | None, timeout: float) -> int:
    from motionrelay_cli import cli

    try:
        for sample in (IMAGE, VIDEO):
            if not sample.is_file():
                raise DemoError(f"sample input {sample} is missing (make samples)")
        print("starting the local stack (moto, provider sandbox, API) ...", flush=True)
        # The caller's configuration (MOTIONRELAY_ROUTING, MOTIONRELAY_<P>_BASE_URL, ...) applies.
        with LocalStack(port=0, routing=provider, environ=os.environ) as stack:
            chosen = provider or stack.routing.split(",")[0]
            # What a person would type against `make dev`; the stack's URL and key come on top.
            command = ["submit", _shown(IMAGE), _shown(VIDEO), *demo_options(chosen),
                       *(["--provider", provider] if provider else []),
                       "--wait", "--out", f"{_shown(OUT_DIR)}/"]
            print(f"local API {stack.api_url}, provider {chosen}\n$ motionrelay {shlex.join(command)}",
                  flush=True)
            args = cli.build_parser().parse_args([
                *command, "--url", stack.api_url, "--api-key", stack.dev_api_key,
                "--wait-timeout", str(timeout), "--poll-interval", str(POLL_SECONDS),
            ])
            args.image, args.video, args.out = str(IMAGE), str(VIDEO), f"{OUT_DIR}/"  # whatever the cwd
            with cli.make_api(args) as api:
                result = cli.submit(args, api, sys.stdout, sys.stderr)
            if result.download is None:  # submit raises unless the video was downloaded
                raise DemoError(f"job {result.job.get('id')} left no video")
            location = verify_in_s3(result.job, result.download.size_bytes, stack)
        print(f"verified: {describe_mp4(result.download.path)}; stored as {location}", flush=True)
        return 0
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except cli.CliError as exc:  # the CLI's own errors: the API's `code: message`, a failed job, ...
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except (OSError, TemplateError, FaultSpecError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
