"""The web console (`GET /console`, `GET /console/<asset>`): static files shipped in the layer
(`motionrelay/console/`), served by the API function under a strict Content-Security-Policy.

The page is public; it holds nothing until the user types an API key, which the page keeps in
sessionStorage and sends only as `Authorization: Bearer` to this API. Scripts and styles come
only from this origin (no CDN, no inline code), the DOM is built without HTML strings (Trusted
Types enforced), and the media bucket's origin is allowed only for what the page does there:
PUT the uploads (connect-src) and play the output (media-src).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response

from motionrelay.version import __version__

ASSETS_DIR = Path(__file__).resolve().parent.parent / "console"
# The only files served: name -> content type (anything else is 404, no path is ever joined).
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "icon.svg": "image/svg+xml"}
VERSION_MARK = "{{version}}"


@cache
def media_origin() -> str:
    """Where presigned URLs of the media bucket point (scheme://host[:port]): computed by
    presigning locally, no request sent, so it is right for AWS, a custom endpoint and moto."""
    from motionrelay.infra.aws import client
    from motionrelay.infra.blobs import bucket
    from motionrelay.infra.resources import OUTPUT_PREFIX

    # Under outputs/, which the function presigns anyway (the local stack checks presigns too).
    url = client("s3").generate_presigned_url("get_object", Params={"Bucket": bucket(),
                                              "Key": f"{OUTPUT_PREFIX}console"}, ExpiresIn=60)
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(media: str) -> str:
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"connect-src 'self' {media}",
        f"media-src {media} blob:",
        "img-src 'self' data: blob:",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ))


def _headers(content_type: str, *, cache_seconds: int) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Cache-Control": f"public, max-age={cache_seconds}" if cache_seconds else "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


@cache
def _index_html() -> str:
    return (ASSETS_DIR / "index.html").read_text(encoding="utf-8").replace(VERSION_MARK, __version__)


def index_response() -> Response:
    headers = _headers("text/html; charset=utf-8", cache_seconds=0)
    headers["Content-Security-Policy"] = content_security_policy(media_origin())
    headers["X-Frame-Options"] = "DENY"
    return Response(status_code=200, body=_index_html(), headers=headers)


@cache
def _asset(name: str) -> bytes:
    return (ASSETS_DIR / name).read_bytes()


def asset_response(name: str) -> Response | None:
    """The asset, or None for any name not in ASSETS (the caller answers 404)."""
    if name not in ASSETS:
        return None
    # Short cache: a new layer version changes the files under the same names.
    return Response(status_code=200, body=_asset(name).decode("utf-8"),
                    headers=_headers(ASSETS[name], cache_seconds=300))
