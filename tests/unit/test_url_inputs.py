"""https:// inputs: fetched through the SSRF guard, streamed into S3, refused with clear codes."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from conftest import SAMPLES
from test_api import job_items, post_job, sample_request

FILES = {"/character.png": (SAMPLES / "character.png").read_bytes(),
         "/motion.mp4": (SAMPLES / "motion.mp4").read_bytes(),
         "/notes.png": b"these are not the pixels you are looking for"}


class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = FILES.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def files_url(monkeypatch):
    """A loopback file server; loopback is allowed only because this is the local mode."""
    from motionrelay.settings import reset_settings

    monkeypatch.setenv("MOTIONRELAY_LOCAL", "1")
    reset_settings()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    reset_settings()


def test_url_inputs_are_staged_in_s3_and_handed_over_presigned(aws, kie, files_url):
    request = sample_request(image=f"{files_url}/character.png", video=f"{files_url}/motion.mp4")
    status, job = post_job(request)
    assert status == 202, job
    assert job["request"]["image"] == {
        "source": "url", "url": f"{files_url}/character.png", "content_type": "image/png",
        "size_bytes": len(FILES["/character.png"]), "sha256": job["request"]["image"]["sha256"],
        # what the probe found, before any provider was paid
        "format": "png", "width": 480, "height": 720}
    sent = next(iter(kie.tasks.values()))["input"]
    assert "/inputs/" in sent["video_urls"][0] and files_url not in sent["video_urls"][0]


@pytest.mark.parametrize("path,code", [
    ("/missing.png", "input_unreachable"),
    ("/notes.png", "unsupported_media"),
])
def test_bad_url_inputs_are_refused(aws, kie, files_url, path, code):
    status, body = post_job(sample_request(image=f"{files_url}{path}"))
    assert status in (415, 422) and body["error"]["code"] == code and body["error"]["field"] == "image"
    assert kie.submits() == 0 and job_items() == []


def test_a_url_that_never_answers_is_refused_in_bounded_time(aws, kie, files_url, monkeypatch):
    monkeypatch.setattr("motionrelay.inputs.FETCH_TIMEOUT_SECONDS", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        status, body = post_job(sample_request(image=f"http://127.0.0.1:{silent.getsockname()[1]}/x.png"))
    finally:
        silent.close()
    assert status == 422 and body["error"]["code"] == "input_unreachable"
    assert kie.submits() == 0 and job_items() == []


def test_the_input_size_cap_applies_to_urls(aws, kie, files_url, monkeypatch):
    from motionrelay.providers import kie as kie_module

    monkeypatch.setattr(kie_module.KieAdapter, "capabilities",
                        kie_module.CAPABILITIES.__class__(**{**kie_module.CAPABILITIES.__dict__,
                                                             "max_image_bytes": 1000}))
    status, body = post_job(sample_request(image=f"{files_url}/character.png"))
    assert status == 413 and body["error"]["code"] == "input_too_large"


# --------------------------------------------------------------------------- a total time budget


class DripServer:
    """Loopback HTTP server that sends `head`, then one byte every 0.2 s. It gives up after
    `give_up` seconds (so the code before the total budget existed ends too, and fails)."""

    def __init__(self, head: bytes, *, give_up: float = 5.0) -> None:
        self.head, self.give_up = head, give_up
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        started = time.monotonic()
        try:
            conn.recv(65536)  # the request
            conn.sendall(self.head)
            while not self.stop.is_set() and time.monotonic() - started < self.give_up:
                conn.sendall(b"\x00")
                time.sleep(0.2)
        except OSError:
            pass  # the client hung up: what a bounded fetch does
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


PNG_HEAD = FILES["/character.png"][:64]
BODY_DRIP = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n" + PNG_HEAD
HEADER_DRIP = b"HTTP/1.1 200 OK\r\nX-Slow: "


@pytest.fixture
def drip(files_url):
    servers: list[DripServer] = []

    def start(head: bytes) -> DripServer:
        servers.append(DripServer(head))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def staged_objects() -> list[str]:
    from motionrelay.infra.aws import client

    listing = client("s3").list_objects_v2(Bucket="media", Prefix="inputs/")
    return [o["Key"] for o in listing.get("Contents", [])]


def _stage(url: str, **kwargs):
    from motionrelay.inputs import stage_input

    return stage_input("job_drip", "image", url, max_bytes=20 * 1024 * 1024, allow_loopback=True, **kwargs)


@pytest.mark.parametrize("head", [BODY_DRIP, HEADER_DRIP], ids=["body-drip", "header-drip"])
def test_a_server_dripping_bytes_is_dropped_at_the_staging_deadline(aws, drip, head):
    from motionrelay.domain.errors import InputUnreachable

    server = drip(head)
    budget = 1.0
    started = time.monotonic()
    with pytest.raises(InputUnreachable) as caught:
        _stage(f"{server.url}/slow.png", deadline=time.monotonic() + budget)
    elapsed = time.monotonic() - started

    assert elapsed < budget + 1.0, elapsed  # not 20 s per read, however many reads
    assert (caught.value.code, caught.value.field) == ("input_unreachable", "image")
    assert "too long" in caught.value.message
    assert staged_objects() == []  # the part-way upload was aborted


def test_without_a_deadline_staging_has_a_default_total_budget(aws, drip, monkeypatch):
    from motionrelay.domain.errors import InputUnreachable

    monkeypatch.setattr("motionrelay.inputs.STAGE_BUDGET_SECONDS", 1.0)  # 20 s by default
    server = drip(BODY_DRIP)
    started = time.monotonic()
    with pytest.raises(InputUnreachable, match="too long"):
        _stage(f"{server.url}/slow.png")
    assert time.monotonic() - started < 2.0


def test_a_deadline_leaves_a_timely_fetch_alone(aws, files_url):
    stored, info = _stage(f"{files_url}/character.png", deadline=time.monotonic() + 5.0)
    assert stored.size_bytes == len(FILES["/character.png"]) and info["content_type"] == "image/png"
