"""`make demo`: submit the bundled sample job through the local API and save the video.

Starts a LocalStack on a free port, POSTs `samples/character.png` + `samples/motion.mp4`
as data URIs to `/v1/jobs`, follows the job on one live status line, then downloads the
output from its presigned URL to `out/<job id>.mp4`, checking size and sha256 against the
job resource and that the object is in the stack's S3 bucket. Expected failures print one
clear line and exit non-zero; they never print a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import httpx

from motionrelay_local.stack import REPO_ROOT, LocalStack
from motionrelay_local.template import TemplateError

SAMPLES = REPO_ROOT / "samples"
OUT_DIR = REPO_ROOT / "out"
POLL_SECONDS = 0.5
TERMINAL = {"succeeded", "failed", "canceled"}


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
        "prompt": "The character performs the dance from the reference video.",
    }
    if provider:
        request["provider"] = provider
    return request


def api_error(resp: httpx.Response) -> str:
    """The API's `error.message` (with its code), or whatever the response says."""
    try:
        error = resp.json().get("error") or {}
        return f"{error.get('code', 'error')}: {error.get('message', resp.text)}"
    except (ValueError, AttributeError):
        return resp.text.strip()[:300] or resp.reason_phrase


class StatusLine:
    """One live line on a terminal; plain lines, only on change, otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = ""
        self.width = 0

    def show(self, job: dict[str, Any], elapsed: float) -> None:
        progress = job.get("progress")
        pct = f"{progress:>3}%" if isinstance(progress, int | float) else "  -%"
        status, provider = job.get("status", "?"), job.get("provider") or "-"
        text = f"job {job.get('id')}  {status:<9} provider={provider}  {pct}"
        if self.tty:
            line = f"{text}  {elapsed:5.1f}s"
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
            self.stream.flush()
        elif text != self.last:
            print(f"{text}  {elapsed:.1f}s", file=self.stream, flush=True)
        self.last = text

    def done(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


def submit(client: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/v1/jobs", json=request)
    if resp.status_code != 202:
        raise DemoError(f"POST /v1/jobs answered {resp.status_code}: {api_error(resp)}")
    return resp.json()


def follow(client: httpx.Client, job: dict[str, Any], timeout: float, line: StatusLine) -> dict[str, Any]:
    started = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - started
            line.show(job, elapsed)
            if job.get("status") in TERMINAL:
                return job
            if elapsed > timeout:
                raise DemoError(f"job {job['id']} still {job.get('status')} after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)
            resp = client.get(f"/v1/jobs/{job['id']}")
            if resp.status_code != 200:
                raise DemoError(f"GET /v1/jobs/{job['id']} answered {resp.status_code}: {api_error(resp)}")
            job = resp.json()
    finally:
        line.done()


def download(job: dict[str, Any], stack: LocalStack) -> Path:
    output = job.get("output") or {}
    url = output.get("url")
    if not url:
        raise DemoError(f"job {job['id']} succeeded without an output URL")
    OUT_DIR.mkdir(exist_ok=True)
    target = OUT_DIR / f"{job['id']}.mp4"
    digest, size = hashlib.sha256(), 0
    with httpx.stream("GET", url, timeout=60, trust_env=False) as resp:
        if resp.status_code != 200:
            raise DemoError(f"downloading the output answered {resp.status_code}")
        with target.open("wb") as fh:
            for chunk in resp.iter_bytes(1 << 16):
                digest.update(chunk)
                size += len(chunk)
                fh.write(chunk)
    if digest.hexdigest() != output.get("sha256"):
        raise DemoError(f"sha256 mismatch: downloaded {digest.hexdigest()}, job says {output.get('sha256')}")
    if size != output.get("size_bytes"):
        raise DemoError(f"size mismatch: downloaded {size} bytes, job says {output.get('size_bytes')}")

    # The presigned URL is path-style on moto: /<bucket>/<key>.
    path = unquote(urlsplit(url).path).lstrip("/")
    bucket, _, key = path.partition("/")
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.session.Session().client("s3", endpoint_url=stack.moto_url, region_name="us-east-1")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise DemoError(f"the output is not in S3 at s3://{bucket}/{key}: {exc}") from None
    if head["ContentLength"] != size:
        raise DemoError(f"s3://{bucket}/{key} holds {head['ContentLength']} bytes, downloaded {size}")
    return target


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
        sys.stdout = _StackOutput(terminal, log)
        try:
            code = _run(provider, timeout)
        finally:
            sys.stdout = terminal
    if code:
        print(f"the handlers' logs are in {log_path}", file=sys.stderr)
    return code


def _run(provider: str | None, timeout: float) -> int:
    try:
        request = sample_request(provider)
        print("starting the local stack (moto, provider sandbox, API) ...", flush=True)
        with LocalStack(port=0, routing=provider or "kie") as stack:
            auth = {"Authorization": f"Bearer {stack.dev_api_key}"}
            with httpx.Client(base_url=stack.api_url, headers=auth, timeout=60, trust_env=False) as client:
                job = submit(client, request)
                print(f"submitted job {job['id']} to {stack.api_url}", flush=True)
                job = follow(client, job, timeout, StatusLine())
                if job["status"] != "succeeded":
                    error = job.get("error") or {}
                    code, message = error.get("code", "?"), error.get("message", "")
                    raise DemoError(f"job {job['id']} {job['status']}: {code}: {message}")
                target = download(job, stack)
        rel = target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target
        print(f"wrote {rel} ({job['output']['size_bytes']} bytes, sha256 {job['output']['sha256'][:16]}...)")
        return 0
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"demo failed: HTTP error talking to the local stack: {exc}", file=sys.stderr)
        return 1
    except (OSError, TemplateError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
