"""The SSRF guard: URL forms and addresses that must never be fetched."""

from __future__ import annotations

import http.server
import threading

import pytest

from motionrelay.domain.errors import ForbiddenUrl, InputUnreachable
from motionrelay.infra import netguard
from motionrelay.infra.netguard import address_allowed, check_url, guarded_client, open_stream


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1",
    "2002:7f00:0001::1", "2002:a9fe:a9fe::1",
])
def test_non_public_addresses_are_refused(address):
    assert not address_allowed(address, allow_loopback=False)


# Each one is refused by the explicit deny lists, whatever this Python's `is_global` table says
# (it changed in 3.11.10/3.12.4, CVE-2024-4032; the tests run on 3.11, Lambda on 3.12).
@pytest.mark.parametrize("address", [
    # IPv4 special-purpose networks
    "0.1.2.3", "10.255.255.255", "100.127.255.254", "169.254.0.1", "172.31.255.255",
    "192.0.0.9", "192.0.0.170", "192.0.2.10", "192.88.99.1", "192.168.255.255", "198.19.255.255",
    "198.51.100.7", "203.0.113.200", "239.255.255.250", "255.255.255.254",
    # IPv4-compatible (::/96): judged by the embedded address
    "::127.0.0.1", "::169.254.169.254", "::10.0.0.1", "::0.0.0.2", "::7f00:1",
    # IPv4-mapped and IPv4-translated (SIIT), refused outright
    "::ffff:0:127.0.0.1", "::ffff:0:169.254.169.254", "::ffff:0:808:808", "::ffff:8.8.8.8",
    # NAT64, well-known and local-use prefixes: judged by the embedded address
    "64:ff9b::a00:1", "64:ff9b:1::7f00:1", "64:ff9b:1::a9fe:a9fe",
    # 6to4 of non-public IPv4
    "2002:a00:1::1", "2002:c0a8:101::1",
    # Teredo, documentation, benchmarking and the rest of 2001::/23
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1", "2001:2::1", "2001:10::1", "2001:db8::1",
    # discard-only, site-local (deprecated, still routed by some stacks), ULA, link-local, multicast
    "100::1", "fec0::1", "feff::1", "fd12:3456::1", "fe80::1%eth0", "ff0e::1",
])
def test_explicitly_denied_networks_are_refused(address):
    assert not address_allowed(address, allow_loopback=False)
    assert not address_allowed(address, allow_loopback=True)  # loopback only means 127/8 and ::1


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111",
                                     "64:ff9b::808:808", "2002:808:808::1", "::8.8.8.8", "1.1.1.1",
                                     "2a00:1450:4001:81c::200e"])
def test_public_addresses_are_allowed(address):
    assert address_allowed(address, allow_loopback=False)


@pytest.mark.parametrize("host,address", [
    ("127.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
    ("0x7F.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"), ("0251.0376.0251.0376", "169.254.169.254"), ("127.0.0.1.", "127.0.0.1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("::1", "::1"), ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1"),
    ("example.com", None), ("deadbeef", None), ("1e100.net", None), ("08.1.1.1", None), ("", None),
])
def test_literal_addresses_are_read_as_getaddrinfo_reads_them(host, address):
    assert netguard.literal_address(host) == address


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
    "[::127.0.0.1]", "[::169.254.169.254]", "[::ffff:0:7f00:1]", "[fec0::1]", "[64:ff9b:1::a9fe:a9fe]",
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
