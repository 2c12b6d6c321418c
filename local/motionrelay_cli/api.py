"""A small client of the motionrelay HTTP API v1 (httpx, synchronous).

Every failure surfaces as `ApiError` (the API's `{"error": {code, message, field}}`) or
`CliError` (anything else the user must be told: a missing file, an unreachable host, a
download that does not match the job's sha256). The CLI prints them; nothing here prints.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

# What POST /v1/uploads accepts.
UPLOAD_TYPES = ("image/jpeg", "image/png", "video/mp4", "video/quicktime")
_EXTENSIONS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".mp4": "video/mp4",
               ".m4v": "video/mp4", ".mov": "video/quicktime"}
PASS_THROUGH = ("https://", "http://", "data:", "upload:")
CHUNK = 1 << 20
# Without /v1/uploads (a deployment that does not route it) small files still fit in a request.
INLINE_FALLBACK_MAX_BYTES = 3 * 1024 * 1024
SUBMIT_ATTEMPTS = 3
POLL_ERRORS_TOLERATED = 5
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class CliError(Exception):
    """An expected failure; its message is all the user needs."""


class ApiError(CliError):
    """The API refused a request: its stable `code`, human `message` and `field` if any."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        return f"{text} (field: {self.field})" if self.field else text

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ApiError:
        """The fixed error shape; otherwise whatever the response says (API Gateway's own
        `{"message": ...}` refusals, a proxy's HTML page)."""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            return cls(resp.status_code, str(error.get("code") or f"http_{resp.status_code}"),
                       str(error.get("message") or resp.reason_phrase), error.get("field"))
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return cls(resp.status_code, f"http_{resp.status_code}", body["message"])
        text = " ".join(resp.text.split())[:200] if resp.text else ""
        return cls(resp.status_code, f"http_{resp.status_code}", text or resp.reason_phrase or "no details")


@dataclass(frozen=True)
class Download:
    path: Path
    size_bytes: int
    sha256: str


def _why(exc: Exception) -> str:
    """An exception's text, or its class when it has none (httpx's timeouts often have none)."""
    return str(exc) or type(exc).__name__


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK


def content_type_of(path: Path) -> str:
    """The file's media type, from its first bytes (what the API sniffs too), else its extension."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    guessed = _EXTENSIONS.get(path.suffix.lower())
    if guessed:
        return guessed
    raise CliError(f"{path}: not a PNG/JPEG image or an MP4/MOV video")


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _s3_error(resp: httpx.Response) -> str:
    """S3 answers errors in XML: its Code and Message are what matter."""
    code = re.search(r"<Code>([^<]*)</Code>", resp.text or "")
    message = re.search(r"<Message>([^<]*)</Message>", resp.text or "")
    if code:
        return f"{code.group(1)}: {message.group(1) if message else ''}".rstrip(": ")
    return " ".join((resp.text or resp.reason_phrase).split())[:200]


class Api:
    def __init__(self, base_url: str, api_key: str, *, transport: httpx.BaseTransport | None = None,
                 timeout: float = 60.0, trust_env: bool | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        # A proxy from the environment must not intercept the local stack on loopback.
        trust = (not is_loopback(base_url)) if trust_env is None else trust_env
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout,
                                 trust_env=trust, headers={"Authorization": f"Bearer {api_key}",
                                                           "User-Agent": "motionrelay-cli/0.1"})
        # Presigned S3 URLs carry their own signature: an Authorization header would break them.
        self.raw = httpx.Client(transport=transport, timeout=timeout, trust_env=trust,
                                headers={"User-Agent": "motionrelay-cli/0.1"})
        self.sleep = sleep

    def close(self) -> None:
        self.http.close()
        self.raw.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ------------------------------------------------------------------------

    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.base_url}: {_why(exc)}") from None
        if resp.status_code not in expect:
            raise ApiError.from_response(resp)
        try:
            return resp.json()
        except ValueError:
            raise CliError(f"{method} {path} answered {resp.status_code} with no JSON body") from None

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{quote(job_id, safe='')}")

    def list_jobs(self, *, status: str | None = None, limit: int | None = None,
                  cursor: str | None = None) -> dict[str, Any]:
        given = (("status", status), ("limit", limit), ("cursor", cursor))
        params = {k: v for k, v in given if v is not None}
        return self.request("GET", "/v1/jobs", params=params)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel")

    def create_job(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /v1/jobs. With an Idempotency-Key (one is made up when none is given) a request
        whose answer was lost in transit is sent again safely: the API replays the same job."""
        headers = {"Idempotency-Key": idempotency_key or f"cli-{uuid.uuid4()}"}
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                resp = self.http.post("/v1/jobs", json=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt == SUBMIT_ATTEMPTS:
                    raise CliError(f"cannot reach {self.base_url}: {_why(exc)}") from None
                self.sleep(0.5 * attempt)
                continue
            if resp.status_code == 202:
                return resp.json()
            raise ApiError.from_response(resp)
        raise AssertionError("unreachable")

    def poll_job(self, job_id: str) -> dict[str, Any]:
        """GET the job, riding out a few transient failures (a long wait should survive a blip)."""
        failures = 0
        while True:
            try:
                resp = self.http.get(f"/v1/jobs/{quote(job_id, safe='')}")
            except httpx.TransportError as exc:
                failures += 1
                if failures > POLL_ERRORS_TOLERATED:
                    raise CliError(f"cannot reach {self.base_url}: {_why(exc)}") from None
            else:
                if resp.status_code == 200:
                    return resp.json()
                if resp.status_code not in (429, 500, 502, 503, 504) or failures >= POLL_ERRORS_TOLERATED:
                    raise ApiError.from_response(resp)
                failures += 1
            self.sleep(min(8.0, 0.5 * 2**failures))

    # -- inputs -------------------------------------------------------------------------

    def input_value(self, value: str, notice: Callable[[str], None] = lambda _: None) -> str:
        """A URL, data: URI or upload:<id> as given; a local file uploaded first."""
        if value.startswith(PASS_THROUGH):
            return value
        path = Path(value).expanduser()
        if not path.is_file():
            raise CliError(f"{value}: no such file (inputs are local files, https:// URLs, data: URIs or "
                           "upload:<id>)")
        return self.upload(path, notice)

    def upload(self, path: Path, notice: Callable[[str], None] = lambda _: None) -> str:
        """POST /v1/uploads, then PUT the file, streamed, to the presigned URL: `upload:<id>`."""
        content_type = content_type_of(path)
        size = path.stat().st_size
        try:
            resp = self.http.post("/v1/uploads", json={"content_type": content_type, "size_bytes": size})
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.base_url}: {_why(exc)}") from None
        if resp.status_code == 404 and size <= INLINE_FALLBACK_MAX_BYTES:
            notice(f"this API has no /v1/uploads; sending {path.name} inline ({size} bytes)")
            return f"data:{content_type};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        if resp.status_code not in (200, 201):
            raise ApiError.from_response(resp)
        try:
            upload = resp.json()
            ref, put_url = str(upload["id"]), str(upload["put_url"])
        except (ValueError, KeyError, TypeError):
            raise CliError("POST /v1/uploads answered without an id and put_url") from None
        # The URL signs Content-Type and Content-Length: send exactly what was declared, and
        # a Content-Length rather than chunked encoding, which presigned S3 PUTs refuse.
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        try:
            put = self.raw.put(put_url, content=_file_chunks(path), headers=headers)
        except httpx.HTTPError as exc:
            raise CliError(f"uploading {path} failed: {_why(exc)}") from None
        if not 200 <= put.status_code < 300:
            raise CliError(f"uploading {path} failed: storage answered {put.status_code}: {_s3_error(put)}")
        notice(f"uploaded {path.name} ({size} bytes, {content_type}) as {ref}")
        return ref

    # -- outputs ------------------------------------------------------------------------

    def download(self, job: dict[str, Any], target: Path,
                 on_progress: Callable[[int, int | None], None] = lambda done, total: None) -> Download:
        """Stream the job's output to `target` (via `<target>.part`, renamed when complete and
        checked against the job's size and sha256: a partial file never takes the name)."""
        output = job.get("output") or {}
        url = output.get("url")
        if not url:
            raise CliError(f"job {job.get('id')} has no output to download")
        expected_size, expected_sha = output.get("size_bytes"), output.get("sha256")
        part = target.with_name(target.name + ".part")
        digest, size = hashlib.sha256(), 0
        try:
            with self.raw.stream("GET", url) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise CliError(f"downloading the output answered {resp.status_code}: {_s3_error(resp)}")
                total = expected_size if isinstance(expected_size, int) else None
                with part.open("wb") as fh:
                    for chunk in resp.iter_bytes(CHUNK):
                        fh.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        on_progress(size, total)
            if isinstance(expected_size, int) and size != expected_size:
                raise CliError(f"download incomplete: {size} bytes, the job says {expected_size}")
            if expected_sha and digest.hexdigest() != expected_sha:
                raise CliError(f"download corrupt: sha256 {digest.hexdigest()}, the job says {expected_sha}")
            os.replace(part, target)
        except httpx.HTTPError as exc:
            raise CliError(f"downloading the output failed: {_why(exc)}") from None
        finally:
            part.unlink(missing_ok=True)
        return Download(target, size, digest.hexdigest())
