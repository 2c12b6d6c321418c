"""`webhook_url` at parse time: a literal non-public address is refused (422 forbidden_url)
with netguard's own rules; names are left to the guard at delivery (no DNS at parse time).
The refusals through the API handler are in test_bad_inputs.py."""

from __future__ import annotations

import json

import pytest

from motionrelay.domain.errors import ForbiddenUrl
from motionrelay.validation import parse_job_request

BODY = {"image": "https://files.example/a.png", "video": "https://files.example/a.mp4"}


@pytest.fixture
def local_mode(monkeypatch):
    from motionrelay.settings import reset_settings

    def set_local(on: bool) -> None:
        if on:
            monkeypatch.setenv("MOTIONRELAY_LOCAL", "1")
        else:
            monkeypatch.delenv("MOTIONRELAY_LOCAL", raising=False)
        reset_settings()

    set_local(False)
    yield set_local
    monkeypatch.delenv("MOTIONRELAY_LOCAL", raising=False)
    reset_settings()


def parse(url: str):
    return parse_job_request(json.dumps({**BODY, "webhook_url": url}))


@pytest.mark.parametrize("url", [
    "https://hooks.client.example/motionrelay?token=abc",
    "https://93.184.215.14/hook", "https://[2606:4700:4700::1111]/hook", "https://[64:ff9b::808:808]/",
    # Names are not resolved at parse time, whatever they look like: delivery checks what they
    # resolve to then (DNS can change in between).
    "https://127.0.0.1.nip.io/hook", "https://internal.corp.example/hook", "https://0x7f000001.example/",
])
def test_public_or_named_hosts_pass(local_mode, url):
    assert parse(url).webhook_url == url


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://2130706433/hook", "https://0x7f000001/hook", "https://017700000001/",
    "https://127.1/", "https://[::1]/hook", "https://localhost/hook", "https://api.localhost/hook",
])
def test_loopback_only_in_the_local_stack(local_mode, url):
    with pytest.raises(ForbiddenUrl) as caught:
        parse(url)
    error = caught.value
    assert (error.status, error.code, error.field) == (422, "forbidden_url", "webhook_url")
    local_mode(True)  # settings.allow_loopback, exactly as netguard allows it at delivery
    assert parse(url).webhook_url == url


@pytest.mark.parametrize("url", [
    "https://10.0.0.1/", "https://[::ffff:127.0.0.1]/", "https://[64:ff9b::7f00:1]/", "https://[2002:7f00:1::]/",
    "https://[::127.0.0.1]/", "https://169.254.169.254/",
])
def test_other_non_public_addresses_are_refused_even_in_the_local_stack(local_mode, url):
    local_mode(True)
    with pytest.raises(ForbiddenUrl):
        parse(url)


def test_names_are_not_resolved_at_parse_time(local_mode, monkeypatch):
    import socket

    def no_dns(*args, **kwargs):
        raise AssertionError("DNS was used at parse time")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    assert parse("https://hooks.client.example/x").webhook_url == "https://hooks.client.example/x"
    with pytest.raises(ForbiddenUrl):
        parse("https://2130706433/x")
