"""The web console in a real browser (headless Chromium driven by Playwright) against the local
stack: enter the key, submit the bundled sample through the page (uploads PUT straight to the
bucket's presigned URLs, so the bucket's CORS rules from template.yaml are exercised), watch it
reach `succeeded`, and play the output inline. Saves out/console.png (docs/console.png, shown in the
README, with MOTIONRELAY_UPDATE_SCREENSHOT=1).

Chromium is Debian's (`apt-get install chromium`; .ci/run installs it), never a Playwright
download. Without it the browser tests are skipped, with the reason."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from motionrelay_local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# out/console.png on every run; MOTIONRELAY_UPDATE_SCREENSHOT=1 refreshes the README's copy in docs/.
SCREENSHOT = ROOT / ("docs" if os.environ.get("MOTIONRELAY_UPDATE_SCREENSHOT") else "out") / "console.png"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")
    with sync_api.sync_playwright() as playwright:
        running = playwright.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists()
                                             else shutil.which("chromium"), args=ARGS)
        try:
            yield running
        finally:
            running.close()


def test_the_console_page_is_public_and_locked_down(anonymous: httpx.Client, stack: LocalStack):
    page = anonymous.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    moto = stack.moto_url
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["connect-src"] == f"'self' {moto}" and csp["media-src"].split()[0] == moto
    assert csp["require-trusted-types-for"] == "'script'" and csp["frame-ancestors"] == "'none'"
    assert "<script" in page.text and "<script>" not in page.text  # no inline script: only app.js
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css"), ("icon.svg", "image/svg+xml")):
        asset = anonymous.get(f"/console/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert anonymous.get("/console/..%2Fversion.py").status_code == 404
    assert anonymous.get("/console/index.html").status_code == 404


def test_the_bucket_lets_only_the_console_origin_upload(stack: LocalStack):
    """The template's CORS rule, applied by moto: the API's origin may PUT, another may not."""
    url = f"{stack.moto_url}/{stack.bucket}/inputs/uploads/x.png"
    headers = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    ok = httpx.options(url, headers={**headers, "Origin": stack.api_url}, trust_env=False)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == stack.api_url
    other = httpx.options(url, headers={**headers, "Origin": "http://evil.example"}, trust_env=False)
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_a_job_submitted_in_the_console_plays_in_the_console(browser, stack: LocalStack):
    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(f"{stack.api_url}/console")
        page.fill("#key", stack.dev_api_key)
        page.press("#key", "Enter")  # keyboard: the form submits on Enter
        page.wait_for_selector("#view-new:not([hidden])")
        # GET /v1/providers filled the provider choice.
        page.wait_for_function("() => document.querySelectorAll('#provider option').length > 1")
        page.set_input_files("#file-image", str(SAMPLES / "character.png"))
        page.set_input_files("#file-video", str(SAMPLES / "motion.mp4"))
        page.select_option("#quality", "std")
        page.fill("#prompt", "The character dances")
        page.fill("#metadata", '{"from": "console test"}')
        page.click("#submit")
        page.wait_for_url("**/console#/jobs/job_*", timeout=30_000)
        page.wait_for_selector("#job-status .badge.s-succeeded", timeout=90_000)
        # Functions, not expressions: the page's CSP forbids eval, and Playwright respects it.
        page.wait_for_function("() => { const v = document.getElementById('job-video');"
                               " return v.readyState >= 2 && v.duration > 1; }", timeout=30_000)
        video = page.evaluate("() => { const v = document.getElementById('job-video');"
                              " return {ready: v.readyState, duration: v.duration, src: v.currentSrc}; }")
        assert video["ready"] >= 2 and video["duration"] > 1
        # Straight from the bucket's presigned URL.
        assert urlsplit(video["src"]).netloc == urlsplit(stack.moto_url).netloc
        assert len(page.inner_text("#output-sha256")) == 64
        assert page.locator("#job-attempts li.o-submitted").count() == 1
        # The key is in this tab's sessionStorage only: not in the URL, not in a cookie.
        assert stack.dev_api_key not in page.url
        assert page.evaluate("() => document.cookie") == ""
        assert page.evaluate("() => sessionStorage.getItem('motionrelay.apiKey')") == stack.dev_api_key
        # A frame from the middle of the video for the screenshot.
        page.evaluate("() => new Promise((done) => { const v = document.getElementById('job-video');"
                      " v.pause(); v.addEventListener('seeked', done, {once: true}); v.currentTime = 2; })")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        page.click("nav a[data-route=jobs]")
        page.wait_for_selector("#jobs-table tbody tr .badge.s-succeeded")
        page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    finally:
        context.close()
    assert [p for p in problems if "Content Security Policy" in p or "TrustedHTML" in p] == []
    assert problems == [], problems
    print(f"console browser test: {time.monotonic() - started:.1f} s")
