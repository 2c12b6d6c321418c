"""SSRF guard for every URL the service fetches (inputs, provider outputs, client webhooks).

- only `https` (plain `http` only to loopback, and only in the local stack);
- the host is resolved and *every* address is checked: anything that is not globally
  routable is refused (loopback, private, link-local incl. 169.254.169.254, CGNAT,
  multicast, reserved, unspecified), including IPv4 embedded in IPv6 (mapped, NAT64, 6to4);
- the connection is made to the address that was checked (no second DNS answer can swap
  it: the check lives in the connection backend), TLS still verifies the hostname;
- redirects are followed by hand, each one re-checked, at most 3.
Numeric host spellings (decimal, octal, hex IPv4) are resolved by getaddrinfo like any name
and the resulting address is what gets checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from motionrelay.errors import ForbiddenUrl, InputUnreachable

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 3
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_6TO4 = ipaddress.ip_network("2002::/16")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    return None


def address_allowed(address: str, *, allow_loopback: bool) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_allowed(str(embedded), allow_loopback=allow_loopback)
    if ip.is_loopback:
        return allow_loopback
    # is_global is False for private, CGNAT (100.64/10), link-local, reserved, unspecified...
    return ip.is_global and not ip.is_multicast


def resolve_checked(host: str, port: int, *, allow_loopback: bool) -> list[str]:
    """Resolve `host` and return its addresses, refusing if any one is not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputUnreachable(f"The host {host!r} could not be resolved.") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise InputUnreachable(f"The host {host!r} has no addresses.")
    for address in addresses:
        if not address_allowed(address, allow_loopback=allow_loopback):
            raise ForbiddenUrl(f"The host {host!r} resolves to a non-public address; refused.")
    return addresses


def check_url(url: str, *, allow_loopback: bool, field: str | None = None) -> httpx.URL:
    """Syntactic checks; the address checks happen at connection time."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ForbiddenUrl("The URL is not valid.", field=field) from exc
    if parsed.userinfo:
        raise ForbiddenUrl("URLs with credentials are not accepted.", field=field)
    if not parsed.host:
        raise ForbiddenUrl("The URL has no host.", field=field)
    if parsed.scheme == "https":
        return parsed
    if parsed.scheme == "http" and allow_loopback:
        return parsed  # the connection backend still refuses anything but loopback
    raise ForbiddenUrl("Only https:// URLs are accepted.", field=field)


def guarded_client(*, allow_loopback: bool, timeout: float = 30.0) -> httpx.Client:
    """An httpx client whose every connection goes through the address check."""
    import httpcore
    import httpx

    class GuardedBackend(httpcore.SyncBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            addresses = resolve_checked(host, port, allow_loopback=allow_loopback)
            last_error: Exception | None = None
            for address in addresses:  # connect to a checked address, never re-resolve
                try:
                    return super().connect_tcp(address, port, timeout, local_address, socket_options)
                except httpcore.ConnectError as exc:
                    last_error = exc
            raise last_error or httpcore.ConnectError(f"could not connect to {host}")

    transport = httpx.HTTPTransport(retries=0)
    transport._pool._network_backend = GuardedBackend()  # httpcore's documented extension point
    return httpx.Client(
        transport=transport, follow_redirects=False,
        timeout=httpx.Timeout(timeout, connect=10.0),
        headers={"User-Agent": "motionrelay/0.1"},
    )


@contextmanager
def open_stream(client: httpx.Client, url: str, *, allow_loopback: bool,
                field: str | None = None) -> Iterator[httpx.Response]:
    """GET `url`, following at most MAX_REDIRECTS redirects, each re-checked."""
    import httpx

    current = check_url(url, allow_loopback=allow_loopback, field=field)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response = client.send(client.build_request("GET", current), stream=True)
        except ForbiddenUrl as exc:
            exc.field = exc.field or field
            raise
        except httpx.TimeoutException as exc:
            raise InputUnreachable("The URL did not answer in time.", field=field) from exc
        except httpx.HTTPError as exc:
            raise InputUnreachable(f"The URL could not be fetched ({type(exc).__name__}).",
                                   field=field) from exc
        if response.is_redirect:
            location = response.headers.get("location", "")
            response.close()
            current = check_url(str(current.join(location)), allow_loopback=allow_loopback, field=field)
            continue
        try:
            yield response
        finally:
            response.close()
        return
    raise InputUnreachable(f"The URL redirected more than {MAX_REDIRECTS} times.", field=field)
