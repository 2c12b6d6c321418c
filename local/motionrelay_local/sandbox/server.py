"""The sandbox HTTP server: one loopback port serving every simulated provider.

URL layout (`root` = `http://host:port`):

- `{root}/{provider}/...`            the provider's API, as documented by the provider
- `{root}/{provider}/files/<name>`   rendered outputs, streamed from disk, no auth
- `{root}/_sandbox/{provider}/config` GET the knobs, POST a JSON object to change them
- `{root}/_sandbox`                  GET: which providers are mounted, task count

Provider modules only see `wire.Request`/`wire.Response`; this module owns sockets,
counting, the `latency` knob and file streaming.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .aimlapi import AimlapiProvider
from .fal import FalProvider
from .jobs import FINAL, JobRunner, SimJob
from .kie import KieProvider
from .kling import KlingProvider
from .novita import NovitaProvider
from .pixazo import PixazoProvider
from .provider import Provider, SandboxContext
from .replicate import ReplicateProvider
from .vibedream import VibeDreamProvider
from .wire import Request, Response

log = logging.getLogger(__name__)

# one entry per simulated provider; adding a provider = one module + one line here
PROVIDER_CLASSES: dict[str, type[Provider]] = {
    cls.name: cls for cls in (KieProvider, NovitaProvider, AimlapiProvider, PixazoProvider, VibeDreamProvider,
                              FalProvider, ReplicateProvider, KlingProvider)
}

FILE_NAME = re.compile(r"^[A-Za-z0-9._-]+\.mp4$")
MAX_BODY = 10 * 1024 * 1024  # API bodies are small JSON; refuse anything absurd
COPY_CHUNK = 256 * 1024


class Sandbox:
    """Simulated provider APIs on a background `ThreadingHTTPServer`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: dict[str, str] | None = None,
        kie_hmac_key: str | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="motionrelay-sandbox-"))
        self.callbacks: list[dict[str, Any]] = []
        self.requests: Counter[tuple[str, str]] = Counter()
        self.tasks: dict[str, SimJob] = {}
        self._stopping = threading.Event()
        self._count_lock = threading.Lock()
        self.ctx = SandboxContext(
            root_url=lambda: self.root_url,
            workdir=self.workdir,
            jobs=JobRunner(self.workdir, self._stopping),
            tasks=self.tasks,
            callbacks=self.callbacks,
            stopping=self._stopping,
        )
        keys = api_keys or {}
        options: dict[str, dict[str, Any]] = {"kie": {"hmac_key": kie_hmac_key}}
        self.providers: dict[str, Provider] = {
            name: cls(self.ctx, keys.get(name), **options.get(name, {}))  # type: ignore[call-arg]
            for name, cls in PROVIDER_CLASSES.items()
        }
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- lifecycle

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self._port), _handler_for(self))
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        # a short poll interval makes stop() return quickly (shutdown waits for one poll)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="sandbox-http", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.ctx.jobs.join(timeout=5.0)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self._port}"

    def base_url(self, provider: str) -> str:
        self._provider(provider)
        return f"{self.root_url}/{provider}"

    # --------------------------------------------------------------- knobs and state

    def credentials(self, provider: str) -> dict[str, str]:
        """The provider secret's fields (MOTIONRELAY_<P>_<field>) a client of this simulated
        provider needs, besides its base URL: API_KEY, and e.g. fal's JWKS_URL."""
        return self._provider(provider).credentials()

    def configure(self, provider: str, **knobs: Any) -> dict[str, Any]:
        """Change knobs (see provider.COMMON_KNOBS); returns the provider's whole config."""
        return self._provider(provider).configure(**knobs)

    def config(self, provider: str) -> dict[str, Any]:
        return self._provider(provider).config()

    def wait_task(self, task_id: str, timeout: float = 30.0) -> SimJob:
        """Block until the task is final and its callback (if any) was attempted."""
        job = self.tasks[task_id]
        if not job.settled.wait(timeout):
            raise TimeoutError(f"task {task_id} still {job.state} after {timeout} s")
        return job

    def _provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise KeyError(f"unknown sandbox provider {name!r}") from None

    def count(self, provider: str, endpoint: str) -> None:
        with self._count_lock:
            self.requests[(provider, endpoint)] += 1

    # --------------------------------------------------------------- request handling

    def handle(self, req: Request) -> Response:
        """Route one request; `req.path` is the full path here."""
        parts = req.path.split("/", 3)  # "", first, second, rest
        first = parts[1] if len(parts) > 1 else ""
        if first == "_sandbox":
            return self._control(req, parts[2:])
        provider = self.providers.get(first)
        if provider is None:
            return Response.json({"error": f"no sandbox provider at /{first}"}, status=404)
        sub = "/" + "/".join(parts[2:]) if len(parts) > 2 else "/"
        if sub.startswith("/files/"):
            return self._file(provider, sub[len("/files/"):], req.method)
        preq = Request(req.method, sub, req.query, req.headers, req.body)
        endpoint = provider.route(preq)
        if endpoint is None:
            return provider.not_found(preq)
        self.count(provider.name, endpoint)
        latency = provider.config()["latency"]
        if latency:
            self._stopping.wait(latency)
        return provider.dispatch(endpoint, preq)

    def _file(self, provider: Provider, name: str, method: str) -> Response:
        if method not in ("GET", "HEAD"):
            return Response.json({"error": "method not allowed"}, status=405)
        path = self.ctx.files_dir(provider.name) / name
        if not FILE_NAME.match(name) or name.endswith(".part.mp4") or not path.is_file():
            return Response.json({"error": "not found"}, status=404)
        self.count(provider.name, "files")
        return Response.from_file(path, "video/mp4")

    def _control(self, req: Request, rest: list[str]) -> Response:
        if not rest or rest == [""]:
            return Response.json({
                "providers": {n: self.base_url(n) for n in self.providers},
                "tasks": len(self.tasks),
                "active": sum(1 for j in self.tasks.values() if j.phase not in FINAL),
            })
        tail = "/".join(rest)
        name, _, what = tail.partition("/")
        if what != "config" or name not in self.providers:
            return Response.json({"error": "not found"}, status=404)
        if req.method == "GET":
            return Response.json(self.config(name))
        if req.method != "POST":
            return Response.json({"error": "method not allowed"}, status=405)
        try:
            knobs = req.json() if req.body else {}
            if not isinstance(knobs, dict):
                raise ValueError("body must be a JSON object of knobs")
            return Response.json(self.configure(name, **knobs))
        except ValueError as exc:
            return Response.json({"error": str(exc)}, status=400)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # a poller opens tens of connections at once


def _handler_for(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.sandbox = sandbox
    return Handler


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK stall
    # every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    server_version = "motionrelay-sandbox"
    timeout = 60  # idle keep-alive connections are closed eventually

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature is fixed
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        started = time.monotonic()
        try:
            body = self._read_body()
        except ValueError as exc:
            self._send(Response.json({"error": str(exc)}, status=400))
            self.close_connection = True
            return
        split = urlsplit(self.path)
        req = Request(self.command, split.path, parse_qs(split.query), self.headers, body)
        try:
            resp = self.sandbox.handle(req)
        except Exception:  # noqa: BLE001 - answer like a server error, keep serving
            log.exception("sandbox failed on %s %s", self.command, self.path)
            resp = Response.json({"code": 500, "msg": "Server exception"}, status=500)
        self._send(resp)
        log.debug("%s %s -> %d in %.3fs", self.command, self.path, resp.status, time.monotonic() - started)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()
            if len(out) > MAX_BODY:
                raise ValueError("request body too large")

    def _send(self, resp: Response) -> None:
        try:
            size = resp.file.stat().st_size if resp.file is not None else len(resp.body)
            self.send_response(resp.status)
            for key, value in resp.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command == "HEAD":
                return
            if resp.file is not None:
                with resp.file.open("rb") as fh:
                    shutil.copyfileobj(fh, self.wfile, COPY_CHUNK)
            else:
                self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
