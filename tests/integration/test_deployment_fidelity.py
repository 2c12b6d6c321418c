"""The local stack fails where AWS would.

- A copy of template.yaml with one grant, one index ARN, one bucket prefix or one environment
  variable taken away makes the scenario that needs it fail, with AccessDenied named in the
  IAM report, while the real template passes the same scenario (the module's `stack`).
- Requests to different functions at the same moment do not see each other's events (in
  one process, Powertools' resolvers share the current event), and a burst of connections
  is not reset by a short listen backlog.
- Every function's processes have that function's environment and nothing of this process.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.stacks import start_stack

from motionrelay_local import demo
from motionrelay_local.stack import REPO_ROOT, LocalStack

pytestmark = pytest.mark.integration

TEMPLATE = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
UPLOADS_NEXT = "\n            - Sid: HeadMissingUploadIs404"
API_JOBS_GRANT = """              Action:
                - dynamodb:GetItem
                - dynamodb:PutItem
                - dynamodb:UpdateItem
                - dynamodb:Query"""


def mutated(tmp_path: Path, old: str, new: str) -> Path:
    assert TEMPLATE.count(old) == 1, f"the mutation's anchor is not unique in template.yaml: {old!r}"
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE.replace(old, new), encoding="utf-8")
    return path


def client(stack: LocalStack) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.dev_api_key}"},
                        timeout=30, trust_env=False)


def create_job(api: httpx.Client) -> httpx.Response:
    return api.post("/v1/jobs", json={**demo.sample_request(), "quality": "std"})


def create_idempotent_job(api: httpx.Client) -> httpx.Response:
    return api.post("/v1/jobs", json={**demo.sample_request(), "quality": "std"},
                    headers={"Idempotency-Key": f"k-{time.time_ns()}"})


def list_jobs(api: httpx.Client) -> httpx.Response:
    return api.get("/v1/jobs", params={"limit": 5})


# (what is taken away, the mutation, the scenario that needs it, the refused action, resource suffix)
MUTATIONS: dict[str, tuple[tuple[str, str], Callable[[httpx.Client], httpx.Response], str, str]] = {
    "an action": ((API_JOBS_GRANT, API_JOBS_GRANT.replace("                - dynamodb:UpdateItem\n", "")),
                  create_job, "dynamodb:UpdateItem", ":table/motionrelay-local-jobstable"),
    "an index ARN": (("""                - !GetAtt JobsTable.Arn
                - !Sub ${JobsTable.Arn}/index/*
            - Sid: StageInputs""", """                - !GetAtt JobsTable.Arn
            - Sid: StageInputs"""), list_jobs, "dynamodb:Query", "/index/by_tenant"),
    "a bucket prefix": ((f"Resource: !Sub ${{MediaBucket.Arn}}/inputs/*{UPLOADS_NEXT}",
                         f"Resource: !Sub ${{MediaBucket.Arn}}/input/*{UPLOADS_NEXT}"),
                        create_job, "s3:PutObject", "/inputs/"),
    "an environment variable": (("        MOTIONRELAY_IDEMPOTENCY_TABLE: !Ref IdempotencyTable\n", ""),
                                create_idempotent_job, "dynamodb:", "-idempotency"),
}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    yield from start_stack(routing="kie", poll_interval=5.0)


@pytest.mark.parametrize("removed", list(MUTATIONS))
def test_the_real_template_passes_the_scenario(stack: LocalStack, removed: str):
    _, scenario, _, _ = MUTATIONS[removed]
    with client(stack) as api:
        resp = scenario(api)
    assert resp.status_code in (200, 202), resp.text


@pytest.mark.parametrize("removed", list(MUTATIONS))
def test_a_template_without_it_fails_the_scenario_with_access_denied(tmp_path: Path, removed: str):
    (old, new), scenario, action, resource = MUTATIONS[removed]
    template = mutated(tmp_path, old, new)
    with LocalStack(port=0, routing="kie", poll_interval=30.0, sandbox_state_seconds=0.2, prewarm=False,
                    template_path=template, root=REPO_ROOT) as broken, client(broken) as api:
        resp = scenario(api)
        denied = broken.iam_denials()
    assert resp.status_code == 500, resp.text
    assert any(fn == "ApiFunction" and a.startswith(action) and resource in r for fn, a, r in denied), denied


def test_requests_to_two_functions_at_once_each_see_their_own_event(stack: LocalStack):
    """Uploads and (forged) provider callbacks, interleaved: each answered as itself."""
    callback_body = json.dumps({"code": 200, "data": {"taskId": "task_x", "state": "success"}})

    def upload(i: int) -> tuple[str, int, str]:
        with client(stack) as api:
            resp = api.post("/v1/uploads", json={"content_type": "image/png", "size_bytes": 1000 + i})
        return "upload", resp.status_code, resp.text

    def callback(i: int) -> tuple[str, int, str]:
        with httpx.Client(base_url=stack.api_url, timeout=30, trust_env=False) as anonymous:
            resp = anonymous.post(f"/v1/callbacks/kie/job_{i:031d}?token=nope", content=callback_body,
                                  headers={"content-type": "application/json"})
        return "callback", resp.status_code, resp.text

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        calls = [pool.submit(upload if i % 2 else callback, i) for i in range(32)]
        results = [c.result() for c in calls]
    for kind, status, text in results:
        if kind == "upload":
            assert status == 201, text
        else:
            assert status in (401, 404), text  # refused as a callback, never as an upload


def test_each_function_runs_with_its_own_environment(stack: LocalStack):
    for name, fn in stack.functions.items():
        env = fn.config.environment
        assert env["AWS_LAMBDA_FUNCTION_NAME"] == fn.spec.function_name, name
        assert env["MOTIONRELAY_TABLE"] == stack.table, name
        assert "MOTIONRELAY_KIE_API_KEY" not in env, f"{name}: provider keys come from the secret"
        # A scheduled function may be mid-run: wait for an idle environment to look into.
        deadline = time.monotonic() + 20
        while not (pids := fn.pids()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pids, name
        for pid in pids:
            seen = dict(entry.split("=", 1) for entry in
                        Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)
            assert seen.items() >= env.items(), name
            assert set(seen) - set(env) <= {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE"}, name
