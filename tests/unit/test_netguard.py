"""The SSRF guard: URL forms and addresses that must never be fetched."""

from __future__ import annotations

import http.server
import threading

import pytest

from motionrelay.errors import ForbiddenUrl, InputUnreachable
from motionrelay.netguard import address_allowed, check_url, guarded_client, open_stream


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1",
    "2002:7f00:0001::1", "2002:a9fe:a9fe::1",
])
def test_non_public_addresses_are_refused(address):
    assert not address_allowed(address, allow_loopback=False)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111",
                                     "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    assert address_allowed(address, allow_loopback=False)


def test_loopback_only_when_explicitly_allowed():
    assert address_allowed("127.0.0.1", allow_loopback=True)
    assert address_allowed("::1", allow_loopback=True)
    assert not address_allowed("10.0.0.1", allow_loopback=True)  # private stays refused locally


@pytest.mark.parametrize("url", [
    "http://example.com/a.mp4", "ftp://example.com/a.mp4", "file:///etc/passwd",
    "gopher://example.com/", "https://user:pass@example.com/a.mp4", "https:///nohost",
])
def test_url_forms_refused_before_any_connection(url):
    with pytest.raises(ForbiddenUrl):
        check_url(url, allow_loopback=False)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::1]", "[::ffff:127.0.0.1]",
    "169.254.169.254", "0251.0376.0251.0376", "localhost", "10.1.2.3", "[::ffff:a9fe:a9fe]",
])
def test_https_to_non_public_hosts_is_refused_at_connection(host):
    with guarded_client(allow_loopback=False, timeout=2) as client, pytest.raises(ForbiddenUrl):
        with open_stream(client, f"https://{host}/x.mp4", allow_loopback=False):
            pass


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        hops = {"/r1": "/r2", "/r2": "/r3", "/r3": "/r4", "/r4": "/ok", "/evil": "http://10.0.0.1/x"}
        if self.path in hops:
            self.send_response(302)
            self.send_header("Location", hops[self.path])
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def local_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_loopback_refused_outside_the_local_stack(local_server):
    with pytest.raises(ForbiddenUrl):
        check_url(f"{local_server}/ok", allow_loopback=False)


def test_redirects_are_followed_at_most_three_times(local_server):
    with guarded_client(allow_loopback=True, timeout=2) as client:
        with open_stream(client, f"{local_server}/r2", allow_loopback=True) as response:
            assert response.read() == b"ok"  # r2 -> r3 -> r4 -> ok: three hops
        with pytest.raises(InputUnreachable), open_stream(client, f"{local_server}/r1", allow_loopback=True):
            pass


def test_each_redirect_is_rechecked(local_server):
    with guarded_client(allow_loopback=True, timeout=2) as client, pytest.raises(ForbiddenUrl):
        with open_stream(client, f"{local_server}/evil", allow_loopback=True):
            pass
