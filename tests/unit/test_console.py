"""GET /console and its assets through the API function: public, shipped in the layer, strict CSP."""

from __future__ import annotations

import re

from motionrelay.api import console
from test_openapi import get


def test_the_console_is_public_html_with_a_strict_policy(aws):
    response = get("/console")
    assert response["statusCode"] == 200, response["body"]
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["content-type"].startswith("text/html")
    policy = dict(p.strip().split(" ", 1) for p in headers["content-security-policy"].split(";"))
    media = console.media_origin()
    assert media.startswith("https://") and "amazonaws.com" in media  # the bucket's own origin
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert policy["connect-src"] == f"'self' {media}" and policy["media-src"] == f"{media} blob:"
    assert policy["require-trusted-types-for"] == "'script'" and policy["trusted-types"] == "'none'"
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    from motionrelay.version import __version__

    assert f'content="{__version__}"' in response["body"] and "{{version}}" not in response["body"]


def test_only_the_declared_assets_are_served(aws):
    for name, kind in console.ASSETS.items():
        response = get(f"/console/{name}")
        assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == kind
        assert response["body"] == (console.ASSETS_DIR / name).read_text()
    for name in ("index.html", "..", "%2e%2e%2fversion.py", "app.js.map"):
        assert get(f"/console/{name}")["statusCode"] == 404


def test_the_layer_ships_every_asset_and_the_page_names_only_them():
    shipped = {p.name for p in console.ASSETS_DIR.iterdir()}
    assert set(console.ASSETS) | {"index.html"} == shipped
    html = (console.ASSETS_DIR / "index.html").read_text()
    linked = set(re.findall(r'(?:src|href)="/console/([^"]+)"', html))
    assert linked == set(console.ASSETS)
    assert "<script>" not in html and " style=" not in html and "http" not in html.split("<body>")[0]


def test_the_script_builds_no_html_from_strings():
    """What Trusted Types would refuse at run time, refused here at once."""
    script = (console.ASSETS_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "localStorage", "document.cookie"):
        assert sink not in script, sink
