"""`make demo` asks each provider only for what it can serve (its adapter's capabilities)."""

from __future__ import annotations

import pytest

from motionrelay.settings import PROVIDERS
from motionrelay_cli import cli
from motionrelay_local.demo import PROMPT, demo_options


@pytest.fixture(autouse=True)
def _fresh_adapters():
    """Adapters are cached per process: leave none built from this test's environment."""
    from motionrelay.registry import reset_adapters

    reset_adapters()
    yield
    reset_adapters()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_demo_request_fits_each_provider(provider):
    from motionrelay.registry import get_adapter

    capabilities = get_adapter(provider).capabilities
    args = cli.build_parser().parse_args(["submit", "i.png", "v.mp4", *demo_options(provider),
                                          "--provider", provider, "--wait"])
    body = cli.job_body(args, "upload:i", "upload:v")
    assert body["quality"] in capabilities.qualities
    assert body["quality"] == ("std" if "std" in capabilities.qualities else "pro")
    assert ("prompt" in body) == capabilities.prompt
    assert "negative_prompt" not in body and "keep_original_sound" not in body  # the API's defaults


def test_pixazo_gets_std_and_no_prompt_novita_gets_pro():
    assert demo_options("pixazo") == ["--orientation", "image", "--quality", "std"]
    assert demo_options("novita") == ["--orientation", "image", "--quality", "pro", "--prompt", PROMPT]
