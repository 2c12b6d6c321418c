"""What issue 13 added to the API: the package version, realistic OpenAPI examples, the job's
`stage` and typical run time (honest progress), and GET /v1/providers."""

from __future__ import annotations

import tomllib

import pytest

from conftest import ROOT
from test_api import get_job, post_job, sample_request
from test_jobs_api import call
from test_openapi import _job, get, schema_of


@pytest.fixture(scope="module")
def document() -> dict:
    import json

    return json.loads(get("/v1/openapi.json")["body"])


def test_the_version_is_pyprojects_and_the_documents():
    from motionrelay.version import __version__

    assert __version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_openapi_info_version_is_the_package_version(document):
    from motionrelay.version import __version__

    assert document["info"]["version"] == __version__


def test_every_example_conforms_to_its_schema(document):
    from motionrelay.api.examples import EXAMPLES

    for model, example in EXAMPLES.items():
        assert list(schema_of(document, model).iter_errors(example)) == [], model
    body = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"]["image"].startswith("upload:")  # not Swagger's "string"
    assert document["components"]["schemas"]["JobCreate"]["examples"] == [body["example"]]


def test_the_job_create_example_is_accepted_by_the_parser(aws):
    import json

    from motionrelay.api.examples import JOB_CREATE
    from motionrelay.validation import parse_job_request

    parsed = parse_job_request(json.dumps(JOB_CREATE))
    assert parsed.quality == "std" and parsed.webhook_url == JOB_CREATE["webhook_url"]


@pytest.mark.parametrize(("phase", "stage"), [
    ("pending", "placing"), ("queued", "provider_queued"), ("running", "provider_running"),
    ("transferring", "transferring"), ("failed", "failed"), ("canceled", "canceled"),
])
def test_the_stage_tells_placing_from_queued_from_running_from_transferring(aws, document, phase, stage):
    from motionrelay.domain.job import Phase
    from motionrelay.jobs import job_resource

    resource = job_resource(_job(phase=Phase(phase), provider="kie" if phase != "pending" else None))
    assert resource["stage"] == stage
    assert list(schema_of(document, "Job").iter_errors(resource)) == []
    if phase == "pending":
        assert resource["typical_run_seconds"] is None and resource["provider_reports_progress"] is None
    else:
        assert resource["typical_run_seconds"] == [60.0, 180.0]
        assert resource["provider_reports_progress"] is False  # Kie reports none


def test_a_submitted_job_says_it_waits_at_the_provider_and_for_how_long(aws, kie, monkeypatch):
    from motionrelay.settings import reset_settings

    monkeypatch.setenv("MOTIONRELAY_POLL_TIME_SCALE", "0.05")  # the local stack's compressed time
    reset_settings()
    status, job = post_job(sample_request())
    assert status == 202 and job["status"] == "queued" and job["stage"] == "provider_queued"
    assert get_job(job["id"])[1]["typical_run_seconds"] == [3.0, 9.0]


def test_providers_lists_the_routed_providers_with_credentials(providers, monkeypatch, document):
    status, body = call("GET", "/v1/providers")
    assert status == 200
    schema_of(document, "ProviderList").validate(body)
    assert [p["name"] for p in body["providers"]] == ["kie", "aimlapi"]  # routing order
    kie = body["providers"][0]
    assert kie["qualities"] == ["pro", "std"] and kie["negative_prompt"] is False and kie["callbacks"]

    from motionrelay.settings import reset_settings

    monkeypatch.delenv("MOTIONRELAY_AIMLAPI_API_KEY")  # routed, but no credentials: cannot serve
    reset_settings()
    assert [p["name"] for p in call("GET", "/v1/providers")[1]["providers"]] == ["kie"]


def test_providers_needs_an_api_key(aws):
    status, body = call("GET", "/v1/providers", key="mr_nope")
    assert status == 401 and body["error"]["code"] == "unauthorized"


def test_the_providers_route_is_documented(document):
    op = document["paths"]["/v1/providers"]["get"]
    assert op["operationId"] == "listProviders" and op["responses"]["200"]["content"]["application/json"][
        "example"]["providers"][0]["name"] == "kie"
    assert get("/v1/openapi.json")["statusCode"] == 200
