"""API Gateway HTTP API emulation (Lambda proxy, payload format 2.0), without I/O.

What API Gateway does between the client and the function, done the same way so the real
handlers see the events they will see in AWS:
- route selection: `{name}` matches exactly one path segment, `{name+}` (greedy) the rest;
  the most specific route wins (literal segments over variables, variables over greedy,
  a method over `ANY`), then `$default`; no match is `404 {"message":"Not Found"}`;
- the 2.0 event: lower-cased headers with repeats comma-joined, `cookies` split out of the
  `Cookie` header, `queryStringParameters` decoded with repeats comma-joined, body as text
  for textual content types and base64 (`isBase64Encoded`) for anything else;
- the response: `statusCode`/`headers`/`cookies`/`body` (base64-decoded when flagged), or,
  for a result without `statusCode`, 200 with the result as JSON; a malformed result or a
  raised exception is `500 {"message":"Internal Server Error"}`;
- the 10 MB request payload limit (413), and Lambda's 6 MB synchronous invocation limit
  on the event and on the response.

`stack.py` owns the sockets; everything here is a pure function, unit tested on its own.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

log = logging.getLogger("motionrelay_local")

ACCOUNT_ID = "123456789012"
API_ID = "mrlocalapi"
STAGE = "$default"
DEFAULT_ROUTE = "$default"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's request payload quota
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous request/response payload quota
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Media types API Gateway hands to the function as text; every other body arrives base64.
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/yaml",
        "application/x-yaml",
    }
)


@dataclass(frozen=True)
class Route:
    """One API route: `method` is an upper-case HTTP method or `ANY`; `path` may be `$default`."""

    method: str
    path: str
    target: str  # the logical id of the function that serves it
    _segments: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "_segments", () if self.is_default else _compile(self.path))

    @property
    def is_default(self) -> bool:
        return self.path == DEFAULT_ROUTE

    @property
    def route_key(self) -> str:
        return DEFAULT_ROUTE if self.is_default else f"{self.method} {self.path}"

    @property
    def greedy(self) -> bool:
        return bool(self._segments) and self._segments[-1][0] == "greedy"

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters if this route serves the request, else None."""
        if self.method not in (method.upper(), "ANY"):
            return None
        if self.is_default:
            return {}
        if not raw_path.startswith("/"):
            return None
        parts = raw_path.split("/")[1:]
        params: dict[str, str] = {}
        for i, (kind, name) in enumerate(self._segments):
            if kind == "greedy":
                rest = "/".join(parts[i:])
                if not rest:
                    return None
                params[name] = unquote(rest)
                return params
            if i >= len(parts):
                return None
            if kind == "literal":
                if unquote(parts[i]) != name:
                    return None
            else:
                if not parts[i]:
                    return None  # `{id}` needs a non-empty segment
                params[name] = unquote(parts[i])
        return params if len(parts) == len(self._segments) else None

    def specificity(self) -> tuple:
        """Sort key: higher is more specific, as API Gateway prioritises routes."""
        literals = tuple(int(kind == "literal") for kind, _ in self._segments)
        return (not self.is_default, not self.greedy, literals, self.method != "ANY")


def _compile(path: str) -> tuple[tuple[str, str], ...]:
    if not path.startswith("/"):
        raise ValueError(f"route path must start with '/': {path!r}")
    segments: list[tuple[str, str]] = []
    raw = path.split("/")[1:]
    for i, seg in enumerate(raw):
        if seg.startswith("{") and seg.endswith("+}"):
            if i != len(raw) - 1:
                raise ValueError(f"a greedy path variable must be the last segment: {path!r}")
            segments.append(("greedy", seg[1:-2]))
        elif seg.startswith("{") and seg.endswith("}"):
            segments.append(("param", seg[1:-1]))
        else:
            segments.append(("literal", seg))
    return tuple(segments)


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        keys = [r.route_key for r in self.routes]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"duplicate routes: {', '.join(duplicates)}")

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        best: RouteMatch | None = None
        for route in self.routes:
            params = route.match(method, raw_path)
            if params is not None and (best is None or route.specificity() > best.route.specificity()):
                best = RouteMatch(route, params)
        return best


def is_text_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/") or media in _TEXT_TYPES or media.endswith("+json") or media.endswith("+xml")
    )


def _clf_time(now: float) -> str:
    t = time.gmtime(now)
    clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"


def new_request_id() -> str:
    """API Gateway's HTTP API request ids look like `JKJaXmPLvHcESHA=`."""
    return base64.b64encode(os.urandom(11)).decode()


def build_event(
    *,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    match: RouteMatch,
    source_ip: str,
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    now: float | None = None,
) -> dict:
    """The payload 2.0 event for one request. `target` is the raw request target (path?query)."""
    now = time.time() if now is None else now
    request_id = request_id or new_request_id()
    raw_path, _, raw_query = target.partition("?")

    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":  # 2.0 moves cookies out of the headers into their own list
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    # What API Gateway adds in front of every integration.
    forwarded = merged.get("x-forwarded-for")
    merged["x-forwarded-for"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
    merged.setdefault("x-forwarded-proto", "http")
    host = merged.get("host", "localhost")
    merged.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "80")
    merged["x-amzn-trace-id"] = f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}"

    event: dict = {
        "version": "2.0",
        "routeKey": match.route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    bare_host = host.split(":", 1)[0]
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": host,  # with the port: locally the API is not on 443
        "domainPrefix": bare_host.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": match.route.route_key,
        "stage": STAGE,
        "time": _clf_time(now),
        "timeEpoch": int(now * 1000),
    }
    if match.path_parameters:
        event["pathParameters"] = dict(match.path_parameters)
    if body:
        text = None
        if is_text_content_type(merged.get("content-type")) and "content-encoding" not in merged:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        event["body"] = text if text is not None else base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    event["stageVariables"] = None
    return event


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def gateway_error(status: int, message: str, request_id: str = "") -> HttpResponse:
    """API Gateway's own error responses: `{"message": "..."}`."""
    headers = [("content-type", "application/json")]
    if request_id:
        headers.append(("apigw-requestid", request_id))
    return HttpResponse(status, headers, json.dumps({"message": message}).encode())


def not_found(request_id: str = "") -> HttpResponse:
    return gateway_error(404, "Not Found", request_id)


def internal_error(request_id: str = "") -> HttpResponse:
    return gateway_error(500, "Internal Server Error", request_id)


class MalformedResponse(ValueError):
    """The function returned something API Gateway would answer with a 500."""


def to_http_response(result: object, request_id: str = "") -> HttpResponse:
    """Map a function's result to the HTTP response API Gateway would send (format 2.0)."""
    extra = [("apigw-requestid", request_id)] if request_id else []
    if not (isinstance(result, dict) and "statusCode" in result):
        # 2.0: a result without statusCode is taken as the JSON body of a 200.
        body = json.dumps(result).encode()
        return HttpResponse(200, [("content-type", "application/json"), *extra], body)

    status = result["statusCode"]
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode must be an integer HTTP status, got {status!r}")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            continue  # the gateway frames the response itself
        if isinstance(value, dict | list):
            raise MalformedResponse(f"header {name!r} must be a string (2.0 has no multiValueHeaders)")
        headers.append((str(name), value if isinstance(value, str) else json.dumps(value)))
    for cookie in result.get("cookies") or []:
        headers.append(("set-cookie", str(cookie)))

    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise MalformedResponse(f"body must be a string, got {type(raw_body).__name__}")
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except ValueError as exc:
            raise MalformedResponse("isBase64Encoded is set but body is not valid base64") from exc
    else:
        body = raw_body.encode("utf-8")
    return HttpResponse(status, headers + extra, body)


class Gateway:
    """Request in, response out: route, build the event, invoke, map the result.

    `invoke(target, event)` runs the function named by the route's target; it is injected
    so this stays testable without Lambda or sockets.
    """

    def __init__(self, table: RouteTable, invoke: Callable[[str, dict], Any]) -> None:
        self.table = table
        self.invoke = invoke

    def handle(
        self,
        *,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        source_ip: str,
        protocol: str = "HTTP/1.1",
    ) -> tuple[HttpResponse, RouteMatch | None]:
        request_id = new_request_id()
        if len(body) > MAX_REQUEST_BYTES:
            return gateway_error(413, "Request Entity Too Large", request_id), None
        match = self.table.match(method, target.partition("?")[0])
        if match is None:
            return not_found(request_id), None
        event = build_event(
            method=method,
            target=target,
            headers=headers,
            body=body,
            match=match,
            source_ip=source_ip,
            protocol=protocol,
            request_id=request_id,
        )
        if len(json.dumps(event)) > LAMBDA_PAYLOAD_BYTES:
            # Under API Gateway's 10 MB but over what Lambda accepts synchronously.
            log.warning("%s: event exceeds Lambda's 6 MB invocation payload", match.route.route_key)
            return gateway_error(413, "Request Entity Too Large", request_id), match
        try:
            result = self.invoke(match.route.target, event)
        except Exception:  # noqa: BLE001 - any handler failure is a 500, as in AWS
            log.exception("%s: %s raised", match.route.route_key, match.route.target)
            return internal_error(request_id), match
        try:
            if len(json.dumps(result)) > LAMBDA_PAYLOAD_BYTES:
                raise MalformedResponse("response exceeds Lambda's 6 MB payload limit")
            return to_http_response(result, request_id), match
        except (MalformedResponse, TypeError) as exc:
            log.error(
                "%s: %s returned a malformed response: %s", match.route.route_key, match.route.target, exc
            )
            return internal_error(request_id), match
