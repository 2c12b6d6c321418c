"""SSRF guard for every URL the service fetches (inputs, provider outputs, client webhooks).

- only `https`; plain `http` only in the local stack, where the connection backend then lets it
  reach loopback *and* public hosts alike (never private ones);
- the host is resolved and *every* address is checked: anything that is not globally
  routable is refused (loopback, private, link-local incl. 169.254.169.254, CGNAT,
  multicast, reserved, unspecified), including IPv4 embedded in IPv6 (compatible, NAT64,
  6to4, Teredo) and the IPv4-mapped/-translated forms. The check is an explicit deny list of
  networks *and* `ipaddress.is_global` (whose table differs between Python releases,
  CVE-2024-4032): an address must pass both;
- the connection is made to the address that was checked (no second DNS answer can swap
  it: the check lives in the connection backend), TLS still verifies the hostname;
- redirects are followed by hand, each one re-checked, at most 3;
- a fetch may have a wall-clock deadline (`open_stream(deadline=...)`): a watchdog shuts the
  connection down when it passes, however the server paces its bytes.
Numeric host spellings (decimal, octal, hex IPv4) are resolved by getaddrinfo like any name
and the resulting address is what gets checked; `literal_address` reads them the same way
without a connection (for checks at parse time).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from motionrelay.domain.errors import ForbiddenUrl, InputUnreachable

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 3
_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_LOOPBACK_V4 = _V4("127.0.0.0/8")
# Refused whatever `is_global` says (IANA special-purpose registry, not globally reachable).
_DENY_V4 = tuple(_V4(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
))
_DENY_V6 = tuple(_V6(n) for n in (
    "::/128", "::ffff:0:0/96",  # unspecified; IPv4-mapped (never what getaddrinfo returns here)
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
_IETF_PROTOCOLS = _V6("2001::/23")  # refused except the parts `is_global` says are global
_TEREDO = _V6("2001::/32")
_IPV4_COMPATIBLE = _V6("::/96")
_NAT64 = _V6("64:ff9b::/96")
_NAT64_LOCAL = _V6("64:ff9b:1::/48")
_6TO4 = _V6("2002::/16")
_NUMERIC_IPV4 = re.compile(r"^[0-9a-fA-FxX.]+$")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (compatible, NAT64 well-known or local-use,
    6to4); the IPv4-mapped and -translated forms are refused outright before this."""
    if ip in _IPV4_COMPATIBLE or ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ip.sixtofour
    return None


def address_allowed(address: str, *, allow_loopback: bool) -> bool:
    """Whether a connection to `address` (an IP address as text) may be made.

    Loopback is allowed only with `allow_loopback` (the local stack); everything on the deny
    lists, or not `is_global`, or multicast, is refused. An IPv6 address embedding an IPv4
    one is judged by that IPv4 address (never as loopback: it is not the local host)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        if ip in _LOOPBACK_V4:
            return allow_loopback
        if any(ip in net for net in _DENY_V4):
            return False
        return ip.is_global and not ip.is_multicast
    if ip == ipaddress.IPv6Address("::1"):
        return allow_loopback
    if any(ip in net for net in _DENY_V6):
        return False
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return address_allowed(str(embedded), allow_loopback=False)
    if ip in _TEREDO and ip.teredo and not address_allowed(str(ip.teredo[1]), allow_loopback=False):
        return False
    if ip in _IETF_PROTOCOLS and not ip.is_global:
        return False
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    """The address a numeric host stands for, read as getaddrinfo reads it (an IPv6 literal,
    with or without brackets, or IPv4 in any `inet_aton` spelling: dotted, decimal, hex,
    octal, 1 to 4 parts, one trailing dot tolerated), or None for a name. Resolves nothing."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    candidate = host[:-1] if host.endswith(".") else host
    if not candidate or not _NUMERIC_IPV4.match(candidate):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(candidate))
    except OSError:
        return None


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
        # Local stack only. The backend still checks every address, so this plain http
        # reaches loopback *and* public hosts (never private ones).
        return parsed
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


class FetchTooSlow(InputUnreachable):
    """A fetch ran past its wall-clock deadline (`open_stream(deadline=...)`)."""

    def __init__(self, seconds: float, *, field: str | None = None) -> None:
        super().__init__(f"The URL took too long to fetch (more than {seconds:.3g} s in all).", field=field)
        self.seconds = seconds


def _shutdown(stream: Any) -> None:
    """Shut a connection's socket down from another thread: a blocked read returns at once."""
    try:
        sock = stream.get_extra_info("socket")
        if sock is not None:
            # socket.socket's own method, also for an SSLSocket: no TLS close_notify exchange.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, AttributeError, ValueError):
        pass  # already closed, detached by start_tls, or not a socket stream (a mock)


class _Deadline:
    """A wall-clock limit on one fetch, redirects and body included.

    Per-read timeouts do not bound a server that sends a byte now and then. So: every
    request's timeouts are cut to the time left; the body is checked between chunks; and a
    watchdog thread shuts the connection's socket down when the deadline passes, which also
    ends a read that is still waiting (headers dripped, or a stall after the deadline). The
    sockets are learnt from httpcore's `trace` request extension (and the response's
    `network_stream` extension, for a connection reused from the pool)."""

    def __init__(self, deadline: float, field: str | None) -> None:
        self.deadline = deadline
        self.field = field
        self.seconds = max(0.0, deadline - time.monotonic())
        self.expired = False
        self._streams: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.deadline

    def error(self) -> FetchTooSlow:
        return FetchTooSlow(self.seconds, field=self.field)

    def check(self) -> None:
        if self.passed():
            raise self.error()

    def request_options(self, client: httpx.Client) -> dict[str, Any]:
        import httpx

        left = max(0.001, self.deadline - time.monotonic())
        base = client.timeout

        def cut(value: float | None) -> float:
            return left if value is None else min(value, left)

        timeout = httpx.Timeout(connect=cut(base.connect), read=cut(base.read), write=cut(base.write),
                                pool=cut(base.pool))
        return {"timeout": timeout, "extensions": {"trace": self._trace}}

    def _trace(self, event_name: str, info: dict[str, Any]) -> None:
        if event_name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        if stream is None:
            return
        with self._lock:
            self._streams.append(stream)
            expired = self.expired
        if expired:
            _shutdown(stream)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            streams = list(self._streams)
        for stream in streams:
            _shutdown(stream)

    def wrap(self, stream: Any) -> Any:
        return _deadline_stream_type()(stream, self)

    def cancel(self) -> None:
        self._timer.cancel()


@functools.cache
def _deadline_stream_type() -> type:
    """An httpx.SyncByteStream enforcing a _Deadline between chunks (made on first use:
    httpx is imported lazily here)."""
    import httpx

    class DeadlineStream(httpx.SyncByteStream):
        def __init__(self, inner: Any, limit: _Deadline) -> None:
            self._inner = inner
            self._limit = limit

        def __iter__(self) -> Iterator[bytes]:
            try:
                for chunk in self._inner:
                    self._limit.check()
                    yield chunk
            except httpx.HTTPError as exc:  # the watchdog's shutdown, or a real break
                if self._limit.passed():
                    raise self._limit.error() from exc
                raise
            self._limit.check()  # an end of body the watchdog caused is not the end

        def close(self) -> None:
            self._inner.close()

    return DeadlineStream


@contextmanager
def open_stream(client: httpx.Client, url: str, *, allow_loopback: bool, field: str | None = None,
                deadline: float | None = None) -> Iterator[httpx.Response]:
    """GET `url`, following at most MAX_REDIRECTS redirects, each re-checked.

    With `deadline` (a `time.monotonic()` value) the whole fetch must be over by then,
    redirects and reading the body included: past it the response is closed and
    FetchTooSlow (`input_unreachable`) is raised, however slowly the server keeps sending."""
    import httpx

    limit = _Deadline(deadline, field) if deadline is not None else None
    try:
        current = check_url(url, allow_loopback=allow_loopback, field=field)
        for _ in range(MAX_REDIRECTS + 1):
            if limit is not None:
                limit.check()
            options = limit.request_options(client) if limit is not None else {}
            try:
                response = client.send(client.build_request("GET", current, **options), stream=True)
            except ForbiddenUrl as exc:
                exc.field = exc.field or field
                raise
            except httpx.HTTPError as exc:
                if limit is not None and limit.passed():
                    raise limit.error() from exc
                if isinstance(exc, httpx.TimeoutException):
                    raise InputUnreachable("The URL did not answer in time.", field=field) from exc
                raise InputUnreachable(f"The URL could not be fetched ({type(exc).__name__}).",
                                       field=field) from exc
            if limit is not None:
                limit.watch(response.extensions.get("network_stream"))
                response.stream = limit.wrap(response.stream)
                if limit.passed():
                    response.close()
                    raise limit.error()
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
    finally:
        if limit is not None:
            limit.cancel()
