"""No log line carries a URL's query string: presigned S3 signatures, callback tokens and
clients' webhook tokens travel there, and httpx logs `HTTP Request: <method> <full URL>`."""

from __future__ import annotations

import logging

import httpx
import pytest

import motionrelay.observability  # noqa: F401 - importing it installs the redaction

SECRET_URL = ("https://media.s3.amazonaws.com/inputs/job_1/image.png"
              "?X-Amz-Signature=secret&token=abc&X-Amz-Credential=AKIAEXAMPLE")


def request_through_httpx(url: str = SECRET_URL) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"ok"))
    with httpx.Client(transport=transport) as client:
        assert client.get(url).status_code == 200


def every_record(caplog) -> str:
    """Every field of every record, from every logger, message formatted."""
    return "\n".join(f"{r.name} {r.getMessage()} {vars(r)!r}" for r in caplog.records)


def test_no_record_at_any_level_carries_the_query_string(caplog):
    caplog.set_level(logging.DEBUG)  # the root logger, at the most verbose level
    request_through_httpx()
    logs = every_record(caplog)
    for sensitive in ("secret", "abc", "AKIAEXAMPLE", "X-Amz-Signature"):
        assert sensitive not in logs


@pytest.mark.parametrize("name", ["httpx", "httpcore", "httpcore.connection", "httpcore.http11"])
def test_the_redaction_does_not_depend_on_the_level(caplog, monkeypatch, name):
    """A later change of level (ApplicationLogLevel=DEBUG, a debugging session) must not leak."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    logging.getLogger(name).info("HTTP Request: %s %s %r", "GET", httpx.URL(SECRET_URL), "HTTP/1.1 200 OK")
    logging.getLogger(name).debug(f"sent to {SECRET_URL}; again: <{SECRET_URL}>")
    logs = every_record(caplog)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert messages.count("https://media.s3.amazonaws.com/inputs/job_1/image.png?<redacted>") == 3
    for sensitive in ("secret", "abc", "AKIAEXAMPLE"):
        assert sensitive not in logs


def test_httpx_itself_is_redacted_when_its_level_is_lowered(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    request_through_httpx()
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines == ['HTTP Request: GET https://media.s3.amazonaws.com/inputs/job_1/image.png?<redacted> '
                     '"HTTP/1.1 200 OK"']


def test_the_http_loggers_stay_at_warning():
    for name in ("httpx", "httpcore"):
        assert logging.getLogger(name).level == logging.WARNING
        assert sum(type(f).__name__ == "RedactQueryStrings" for f in logging.getLogger(name).filters) == 1
    # The SDK at DEBUG logs whole bodies (secrets included): a root logger at DEBUG leaves it quiet.
    for name in ("botocore", "boto3", "urllib3"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING


def test_urls_without_a_query_and_other_text_are_left_alone():
    from motionrelay.observability import redact_query_strings

    plain = "GET https://a.example/x.mp4 done? yes"
    assert redact_query_strings(plain) == plain
    assert redact_query_strings("'https://a.example/x?t=1#frag'") == "'https://a.example/x?<redacted>#frag'"
