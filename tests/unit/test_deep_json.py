"""Untrusted JSON nested too deeply for the parser (RecursionError, which is not a ValueError)
is treated like any malformed JSON: a provider answer becomes a retryable ProviderError, never
an exception the caller does not expect. Request bodies: test_bad_inputs.py and
test_uploads.py; callbacks: test_kie_adapter.py, test_novita_adapter.py, test_webhook.py."""

from __future__ import annotations

import httpx
import pytest

from motionrelay.providers.aimlapi import AimlapiAdapter
from motionrelay.providers.base import ProviderError, json_body
from motionrelay.providers.kie import KieAdapter
from motionrelay.providers.novita import NovitaAdapter
from motionrelay.providers.pixazo import PixazoAdapter
from motionrelay.providers.vibedream import VibeDreamAdapter

DEEP = [b"[" * 100_000, b'{"data":' * 100_000]
ADAPTERS = [KieAdapter(api_key="k"), NovitaAdapter(api_key="k"), AimlapiAdapter(api_key="k"),
            PixazoAdapter(api_key="k"), VibeDreamAdapter(api_key="k")]


def answer(status: int, content: bytes) -> httpx.Response:
    return httpx.Response(status, content=content, headers={"content-type": "application/json"},
                          request=httpx.Request("GET", "https://provider.example/"))


@pytest.mark.parametrize("content", DEEP, ids=["arrays", "objects"])
def test_json_body_reads_a_too_deep_answer_as_not_json(content):
    assert json_body(answer(200, content)) is None


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize("content", DEEP, ids=["arrays", "objects"])
@pytest.mark.parametrize("adapter", ADAPTERS, ids=[a.name for a in ADAPTERS])
def test_a_too_deep_provider_answer_is_a_retryable_provider_error(adapter, content, status):
    for parse in (adapter.parse_submit, adapter.parse_status):
        with pytest.raises(ProviderError) as caught:
            parse(answer(status, content))
        assert caught.value.retryable


def test_kie_result_json_too_deep_is_no_output():
    from motionrelay.domain.job import ProviderState

    data = {"taskId": "t1", "state": "success", "resultJson": "[" * 100_000}
    status = KieAdapter(api_key="k").parse_status(
        httpx.Response(200, json={"code": 200, "msg": "success", "data": data}))
    assert status.state is ProviderState.FAILED and status.error_code == "provider_no_output"


def test_the_idempotency_body_hash_never_raises():
    from motionrelay.infra.idempotency import body_sha256

    assert len(body_sha256(b"[" * 100_000)) == 64
