"""Provider credentials: environment first (local stack), else the one Secrets Manager secret."""

from __future__ import annotations

import json

import pytest

from motionrelay.registry import provider_secret
from motionrelay.settings import get_settings, reset_settings


def test_credentials_come_from_the_json_secret_when_not_in_the_environment(aws, monkeypatch):
    from motionrelay.infra.aws import client

    arn = client("secretsmanager").create_secret(
        Name="motionrelay/providers",
        SecretString=json.dumps({"MOTIONRELAY_KIE_API_KEY": "from-secret",
                                 "MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY": "hmac-from-secret"}),
    )["ARN"]
    monkeypatch.delenv("MOTIONRELAY_KIE_API_KEY")
    monkeypatch.delenv("MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY")
    monkeypatch.setenv("MOTIONRELAY_PROVIDER_SECRET", arn)
    reset_settings()

    assert provider_secret("kie") == "from-secret"
    assert provider_secret("kie", "WEBHOOK_HMAC_KEY") == "hmac-from-secret"
    assert provider_secret("novita") == ""  # absent key: empty, not an error

    monkeypatch.setenv("MOTIONRELAY_KIE_API_KEY", "from-env")
    assert provider_secret("kie") == "from-env"


def test_routing_names_are_checked(monkeypatch):
    monkeypatch.setenv("MOTIONRELAY_ROUTING", "kie, acme")
    reset_settings()
    with pytest.raises(ValueError, match="acme"):
        get_settings()
    monkeypatch.setenv("MOTIONRELAY_ROUTING", "kie,novita")
    reset_settings()
    assert get_settings().routing == ("kie", "novita")
    reset_settings()


def test_adapters_pick_up_a_rotated_key_after_the_cache_time(aws, monkeypatch):
    import time

    from motionrelay import registry as providers

    first = providers.get_adapter("kie")
    assert providers.get_adapter("kie") is first  # cached while fresh
    monkeypatch.setenv("MOTIONRELAY_KIE_API_KEY", "rotated-key")
    providers._adapters["kie"] = (time.monotonic() - providers.SECRET_CACHE_SECONDS - 1, first)
    rotated = providers.get_adapter("kie")
    assert rotated is not first
    assert rotated.build_status("t").headers["authorization"] == "Bearer rotated-key"
