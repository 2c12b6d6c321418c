"""Ranking providers by their capability sets: request-level, then on the probed media."""

from __future__ import annotations

import dataclasses
import types

import pytest

import mediagen
from mediagen import data_uri
from test_api import post_job, sample_request

MB = 1024 * 1024


def kie_caps(**changes):
    from motionrelay.providers.kie import CAPABILITIES

    return dataclasses.replace(CAPABILITIES, **changes)


# Shapes of the real resellers' limits (their adapters own the real values).
PROFILES = {
    "kie": {},
    "novita": {"max_video_bytes": 10 * MB, "qualities": frozenset({"pro"}), "negative_prompt": True,
               "sound_control": True, "video_containers": frozenset({"mp4", "mov"})},
    "pixazo": {"max_video_seconds_video_orientation": 10, "qualities": frozenset({"std"}), "prompt": False,
               "sound_control": True, "video_containers": frozenset({"mp4"})},
    "vibedream": {"max_video_bytes": 10 * MB, "qualities": frozenset({"pro"}), "negative_prompt": True,
                  "video_containers": frozenset({"mp4", "mov"})},
}


@pytest.fixture
def providers(monkeypatch):
    """Fake adapters (capabilities only) for every name: no provider module is needed."""
    from motionrelay import registry

    caps = {name: kie_caps(**changes) for name, changes in PROFILES.items()}
    real = registry.get_adapter

    def get_adapter(name: str):
        if name == "kie":
            return real(name)  # the real one, so a placed job reaches the fake Kie
        return types.SimpleNamespace(name=name, capabilities=caps[name])

    monkeypatch.setattr(registry, "get_adapter", get_adapter)
    return caps


def request(**fields):
    from motionrelay.validation import JobRequest

    return JobRequest(**{"image": "x", "video": "y", "quality": "pro", **fields})


def video(seconds=5.0, size=5 * MB, fmt="mp4"):
    from motionrelay.probe import MediaFacts

    return {"image": MediaFacts("image", "png", 480, 720, 100_000),
            "video": MediaFacts("video", fmt, 480, 720, size, seconds)}


ROUTING = ("kie", "novita", "pixazo", "vibedream")


def test_all_providers_that_can_serve_in_routing_order(aws, providers):
    from motionrelay.validation import rank_providers

    assert rank_providers(request(), ("vibedream", "kie", "novita")) == (["vibedream", "kie", "novita"], [])


def test_request_level_skips_say_why(aws, providers):
    from motionrelay.validation import rank_providers

    candidates, skipped = rank_providers(request(quality="std", prompt="a dancer"), ROUTING)

    assert candidates == ["kie"]
    assert [(s["provider"], s["outcome"]) for s in skipped] == [
        ("novita", "skipped"), ("pixazo", "skipped"), ("vibedream", "skipped")]
    assert skipped[0]["reason"] == "novita does not offer quality 'std' (only pro)"
    assert skipped[1]["reason"] == "pixazo does not accept a prompt"
    assert all(set(s) == {"provider", "outcome", "reason", "at"} and s["at"].endswith("Z") for s in skipped)


@pytest.mark.parametrize("media,orientation,skipped_providers", [
    (video(size=50 * MB), "image", {"novita", "vibedream"}),  # 10 MB caps
    (video(seconds=12), "video", {"pixazo"}),  # <= 10 s whatever the orientation
    (video(fmt="mov"), "image", {"pixazo"}),  # MP4 only
    (video(fmt="mkv"), "image", {"novita", "pixazo", "vibedream"}),  # only Kie takes Matroska
    (video(), "image", set()),
])
def test_media_level_skips(aws, providers, media, orientation, skipped_providers):
    from motionrelay.validation import rank_providers

    ranked, skipped = rank_providers(request(character_orientation=orientation, quality="std"),
                                     ("kie", "pixazo"), media)
    ranked_pro, skipped_pro = rank_providers(request(character_orientation=orientation),
                                             ("kie", "novita", "vibedream"), media)
    assert {s["provider"] for s in skipped + skipped_pro} == skipped_providers
    assert ranked[0] == ranked_pro[0] == "kie"


def test_a_named_provider_is_the_only_candidate(aws, providers):
    from motionrelay.validation import rank_providers

    assert rank_providers(request(provider="novita"), ROUTING, video()) == (["novita"], [])


@pytest.mark.parametrize("fields,media,field,words", [
    ({"provider": "novita", "quality": "std"}, None, "quality", "novita does not offer quality 'std'"),
    ({"provider": "pixazo", "quality": "std", "prompt": "p"}, None, "prompt",
     "pixazo does not accept a prompt"),
    ({"provider": "kie", "negative_prompt": "n"}, None, "negative_prompt", "kie does not accept"),
    ({"provider": "novita"}, video(size=11 * MB), "video", "novita accepts videos up to 10 MB"),
    ({"provider": "pixazo", "quality": "std", "character_orientation": "video"}, video(seconds=12), "video",
     "pixazo accepts videos up to 10 s"),
    ({"provider": "pixazo", "quality": "std"}, video(fmt="mov"), "video",
     "pixazo accepts MP4 videos, not MOV"),
])
def test_a_named_provider_that_cannot_serve_names_the_unmet_limit(aws, providers, fields, media, field,
                                                                  words):
    from motionrelay.domain.errors import ProviderCannotServe
    from motionrelay.validation import rank_providers

    with pytest.raises(ProviderCannotServe) as info:
        rank_providers(request(**{"prompt": None, **fields}), ROUTING, media)
    assert info.value.field == field and words in info.value.message
    assert "omit 'provider'" in info.value.message


def test_a_named_provider_outside_the_routing_is_refused(aws, providers):
    from motionrelay.domain.errors import ProviderCannotServe
    from motionrelay.validation import rank_providers

    with pytest.raises(ProviderCannotServe) as info:
        rank_providers(request(provider="pixazo"), ("kie", "novita"))
    assert info.value.field == "provider" and "kie, novita" in info.value.message


def test_nobody_can_serve_lists_every_reason(aws, providers):
    from motionrelay.domain.errors import ProviderCannotServe
    from motionrelay.validation import rank_providers

    with pytest.raises(ProviderCannotServe) as info:
        rank_providers(request(quality="std", negative_prompt="n"), ("novita", "kie", "vibedream"))
    assert info.value.field == "quality"
    for name in ("novita", "kie", "vibedream"):
        assert name in info.value.message
    assert rank_providers(request(), ("pixazo", "kie"))[0][0] == "kie"  # pixazo: std only


def test_staging_limits_are_the_largest_caps_of_the_candidates(aws, providers):
    from motionrelay.validation import staging_limit

    assert staging_limit("video", ["novita", "vibedream"]) == 10 * MB
    assert staging_limit("video", ["novita", "kie"]) == 100 * MB
    assert staging_limit("image", ["novita", "kie"]) == 10 * MB


def test_too_large_for_a_named_provider_only(aws, providers):
    from motionrelay.validation import too_large

    named = too_large(request(provider="novita"), "video", 10 * MB, ROUTING)
    assert (named.code, named.field) == ("provider_cannot_serve", "video")
    assert "100 MB" in named.message  # what another enabled provider would take
    assert too_large(request(), "video", 10 * MB, ("novita", "vibedream")).code == "input_too_large"
    assert too_large(request(provider="kie"), "video", 100 * MB, ROUTING).code == "input_too_large"
    # Images: 10 MB is the model's own limit, so a bigger image is too large, whoever is named.
    assert too_large(request(provider="novita"), "image", 10 * MB, ROUTING).code == "input_too_large"


# --------------------------------------------------------------------------- end to end


def test_a_job_records_its_candidates_and_the_providers_it_skipped(aws, kie, providers, monkeypatch):
    from motionrelay.infra.jobs_table import JobStore
    from motionrelay.settings import reset_settings

    monkeypatch.setenv("MOTIONRELAY_ROUTING", "novita,pixazo,kie,vibedream")
    reset_settings()
    providers["novita"] = kie_caps(**{**PROFILES["novita"], "max_video_bytes": 10_000})  # sample: 84 KB

    status, job = post_job(sample_request(quality="pro"))

    assert status == 202, job
    assert job["provider"] == "kie" and kie.submits() == 1
    assert [(a["provider"], a["outcome"]) for a in job["attempts"]] == [
        ("pixazo", "skipped"),  # request level: no pro, no prompt
        ("novita", "skipped"),  # media level: the video is over its cap
        ("kie", "submitted"),
    ]
    assert "9.8 KB" in job["attempts"][1]["reason"]
    stored = JobStore().get(job["id"])
    assert stored.candidates == ["kie", "vibedream"]
    assert stored.request["video"]["duration_seconds"] == pytest.approx(4.0, abs=0.1)


def test_the_staging_cap_follows_the_candidates(aws, kie, providers, monkeypatch):
    """Novita alone is routed: a video over its 10 MB cap stops being read at 10 MB."""
    from motionrelay.settings import reset_settings

    monkeypatch.setenv("MOTIONRELAY_ROUTING", "novita")
    reset_settings()
    providers["novita"] = kie_caps(max_video_bytes=20_000)
    status, body = post_job(sample_request(video=data_uri(mediagen.video(4, noise=True), "video/mp4")))
    assert (status, body["error"]["code"], body["error"]["field"]) == (413, "input_too_large", "video")
    assert "19.5 KB" in body["error"]["message"]


def test_the_routing_rules_are_pure_over_a_capabilities_map():
    # domain/routing.py on its own: no registry, no moto; the map is all it reads.
    from motionrelay.domain import routing

    caps = {name: kie_caps(**changes) for name, changes in PROFILES.items()}
    candidates, skipped = routing.rank_providers(request(quality="std"), ROUTING, caps, video(seconds=8))
    assert candidates == ["kie", "pixazo"] and {s["provider"] for s in skipped} == {"novita", "vibedream"}
    assert routing.staging_limit("video", [caps["novita"], caps["vibedream"]]) == 10 * MB
    with pytest.raises(KeyError):  # a provider the map does not describe is never guessed at
        routing.rank_providers(request(), ("acme",), caps)
