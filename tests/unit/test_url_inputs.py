"""https:// inputs: fetched through the SSRF guard, streamed into S3, refused with clear codes."""

from __future__ import annotations

import http.server
import socket
import threading

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
