"""Schemathesis against the local stack's own `/v1/openapi.json`: every documented operation
is fuzzed (valid and invalid requests) with the dev API key, and no answer may be a 5xx,
have a status the operation does not document, or break the documented schema.

Real jobs are created first, one of them run to `succeeded` and one canceled, so that the
listing and reads the fuzzer makes return real job resources in several states (with an
output and with attempts), not only empty pages and 404s.

The provider callback route (`POST /v1/callbacks/{provider}/{job_id}`) is not in the
document: it is for providers, authenticated per provider (test_local_stack.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from motionrelay_local.stack import LocalStack

pytestmark = pytest.mark.integration

# Per operation and mode: the module takes ~20 s. MOTIONRELAY_FUZZ_EXAMPLES=300 digs deeper (~2 min).
MAX_EXAMPLES = int(os.environ.get("MOTIONRELAY_FUZZ_EXAMPLES", "40"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@pytest.fixture(scope="module")
def session(stack: LocalStack) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # loopback: never through a proxy from the environment
        http.headers["Authorization"] = f"Bearer {stack.dev_api_key}"
        yield http


@pytest.fixture(scope="module")
def api_schema(stack: LocalStack, session: requests.Session) -> BaseSchema:
    # Loaded from the running stack: the document the API serves, not one built in-process.
    spec = session.get(f"{stack.api_url}/v1/openapi.json", timeout=30)
    assert spec.status_code == 200, spec.text
    return schemathesis.openapi.from_dict(spec.json())


@pytest.fixture(scope="module")
def jobs(api_schema: BaseSchema, stack: LocalStack, session: requests.Session, api: httpx.Client,
         sample_request: dict) -> dict[str, dict]:
    """A succeeded and a canceled job of the dev key's tenant. Made through schemathesis cases,
    so their 202 and 200 answers are checked against the document too; the fuzzer's reads and
    listings then meet real job resources (with an output, attempts, metadata)."""
    def call(label: str, **case: Any) -> dict:
        operation = api_schema.find_operation_by_label(label)
        response = operation.Case(**case).call_and_validate(base_url=stack.api_url, session=session,
                                                            checks=CHECKS, timeout=60)
        assert response.status_code < 300, response.text
        return response.json()

    done = call("POST /v1/jobs", body=sample_request, headers={"Idempotency-Key": "openapi-fuzz"})
    canceled = call("POST /v1/jobs", body={**sample_request, "metadata": {"order": 42}})
    call("POST /v1/jobs/{job_id}/cancel", path_parameters={"job_id": canceled["id"]})
    deadline = time.monotonic() + 60
    while (succeeded := api.get(f"/v1/jobs/{done['id']}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, succeeded
        time.sleep(0.25)
    assert succeeded["status"] == "succeeded", succeeded.get("error")
    return {"succeeded": succeeded, "canceled": canceled}


def fuzz(operation: APIOperation, mode: GenerationMode, stack: LocalStack, session: requests.Session,
         **fixed: Any) -> None:
    """MAX_EXAMPLES requests for one operation; the first failing check raises (shrunk by Hypothesis)."""
    # The plain Python API with Hypothesis' own @given: schemathesis' pytest plugin does not run
    # on pytest 9.2 (it reads a Node attribute that pytest 9.2 removed).
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Case) -> None:
        case.call_and_validate(base_url=stack.api_url, session=session, checks=CHECKS, timeout=30)

    run()


def test_the_document_covers_the_api(api_schema: BaseSchema):
    operations = {op.ok().label for op in api_schema.get_all_operations()}
    assert operations == {
        "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job_id}", "POST /v1/jobs/{job_id}/cancel",
        "POST /v1/uploads", "GET /v1/webhook-secret", "POST /v1/webhook-secret/rotate", "GET /v1/providers",
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms(api_schema: BaseSchema, jobs: dict[str, dict], stack: LocalStack,
                                  session: requests.Session, mode: GenerationMode):
    for result in api_schema.get_all_operations():
        fuzz(result.ok(), mode, stack, session)


def test_reads_and_cancels_of_real_jobs_conform(api_schema: BaseSchema, jobs: dict[str, dict],
                                                stack: LocalStack, session: requests.Session):
    for label in ("GET /v1/jobs/{job_id}", "POST /v1/jobs/{job_id}/cancel"):
        operation = api_schema.find_operation_by_label(label)
        for job in jobs.values():
            fuzz(operation, GenerationMode.POSITIVE, stack, session, path_parameters={"job_id": job["id"]})

