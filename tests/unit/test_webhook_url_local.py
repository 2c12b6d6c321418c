"""In the local stack only, a plain-http loopback `webhook_url` is taken (`motionrelay listen`);
in AWS it stays refused, and private addresses stay refused everywhere."""

from __future__ import annotations

import pytest

from motionrelay.domain.errors import ForbiddenUrl, InvalidRequest
from test_webhook_url import local_mode, parse  # noqa: F401 - local_mode is a fixture

LISTEN_URLS = ["http://127.0.0.1:48123/", "http://127.0.0.1:48123/hook?x=1", "http://localhost:9000/",
               "http://[::1]:9000/"]


@pytest.mark.parametrize("url", LISTEN_URLS)
def test_plain_http_loopback_is_refused_in_aws(local_mode, url):  # noqa: F811
    with pytest.raises(InvalidRequest) as caught:
        parse(url)
    assert (caught.value.status, caught.value.field) == (400, "webhook_url")
    assert "https://" in caught.value.message and "local stack" not in caught.value.message


@pytest.mark.parametrize("url", LISTEN_URLS)
def test_plain_http_loopback_is_taken_in_the_local_stack(local_mode, url):  # noqa: F811
    local_mode(True)
    assert parse(url).webhook_url == url


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://169.254.169.254/latest", "http://[fe80::1]/"])
def test_plain_http_to_private_addresses_is_refused_even_locally(local_mode, url):  # noqa: F811
    local_mode(True)
    with pytest.raises(ForbiddenUrl):
        parse(url)


def test_other_schemes_stay_refused_locally(local_mode):  # noqa: F811
    local_mode(True)
    with pytest.raises(InvalidRequest, match="or http:// in the local stack"):
        parse("ftp://127.0.0.1/x")
