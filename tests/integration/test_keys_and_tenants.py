"""API keys and tenants over HTTP on the local stack, keys managed with the `motionrelay` CLI.

Every authenticated route is read from template.yaml (every /v1 route but callbacks and
docs), so a route added later is covered without touching this file: no key, an unknown key
and a revoked key are 401 on each; another tenant's job is 404 on every job route, exactly
like a missing one. Ends with a whole CLI session (upload, wait, download, list, get, cancel).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import httpx
import pytest

from motionrelay_cli import cli
from motionrelay_local.stack import REPO_ROOT, LocalStack
from motionrelay_local.template import SamTemplate

pytestmark = pytest.mark.integration

SAMPLES = REPO_ROOT / "samples"
PUBLIC_PREFIXES = ("/v1/callbacks/", "/v1/docs", "/v1/openapi")
JOB_PARAMS = {"id", "job_id"}
_PARAM = re.compile(r"\{([^}+]+)\+?\}")


def authenticated_routes() -> list[tuple[str, str]]:
    routes = SamTemplate.from_file(REPO_ROOT / "template.yaml", REPO_ROOT).http_routes()
    return sorted({(r.method, r.path) for r in routes
                   if r.path.startswith("/v1/") and not r.path.startswith(PUBLIC_PREFIXES)})


ROUTES = authenticated_routes()
JOB_ROUTES = [r for r in ROUTES if set(_PARAM.findall(r[1])) & JOB_PARAMS]


def fill(path: str, job_id: str) -> str:
    return _PARAM.sub(lambda m: job_id if m.group(1) in JOB_PARAMS else "x", path)


def call(stack: LocalStack, method: str, path: str, key: str | None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    with httpx.Client(base_url=stack.api_url, timeout=30, trust_env=False) as client:
        if method in ("POST", "PUT", "PATCH") and "json" not in kwargs:
            kwargs["json"] = {}
        return client.request(method, path, headers=headers, **kwargs)


def motionrelay(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def keys_cli(stack: LocalStack, *argv: str) -> tuple[int, str, str]:
    """`motionrelay keys ...` pointed at the stack's table, as an operator would (with the
    operator's credentials: moto takes any)."""
    with mock.patch.dict(os.environ, {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}):
        return motionrelay("keys", *argv, "--table", stack.table, "--endpoint-url", stack.moto_url,
                           "--region", "us-east-1")


def create_key(stack: LocalStack, tenant: str, name: str = "") -> tuple[str, str]:
    """(the key, its id)."""
    code, out, err = keys_cli(stack, "create", "--tenant", tenant, "--name", name)
    assert code == 0, err
    key_id = re.search(r"created (key_[0-9a-f]{12})", err)
    assert key_id, err
    return out.strip(), key_id.group(1)


@pytest.fixture(scope="module")
def tenants(stack: LocalStack) -> dict[str, str]:
    acme, _ = create_key(stack, "acme", "app")
    globex, _ = create_key(stack, "globex", "app")
    revoked, revoked_id = create_key(stack, "acme", "old")
    assert keys_cli(stack, "revoke", revoked_id)[0] == 0
    return {"acme": acme, "globex": globex, "revoked": revoked}


@pytest.fixture(scope="module")
def acme_job(stack: LocalStack, tenants: dict[str, str], sample_request: dict) -> dict:
    resp = call(stack, "POST", "/v1/jobs", tenants["acme"], json=sample_request)
    assert resp.status_code == 202, resp.text
    return resp.json()


def test_the_routes_under_test_include_the_fixed_api():
    assert {("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/{id}"),
            ("POST", "/v1/jobs/{id}/cancel"), ("POST", "/v1/uploads")} <= set(ROUTES)
    assert {("GET", "/v1/jobs/{id}"), ("POST", "/v1/jobs/{id}/cancel")} <= set(JOB_ROUTES)


def test_keys_are_created_listed_and_revoked_with_the_cli(stack: LocalStack, tenants: dict[str, str]):
    code, out, _ = keys_cli(stack, "list", "--tenant", "acme", "--json")
    assert code == 0
    listed = json.loads(out)
    assert sorted(k["name"] for k in listed) == ["app", "old"]
    assert [bool(k["revoked_at"]) for k in sorted(listed, key=lambda k: k["name"])] == [False, True]

    code, out, _ = keys_cli(stack, "list")
    assert code == 0
    for key in tenants.values():  # ids and prefixes only
        assert key not in out and f"{key[:9]}..." in out
    assert {"acme", "globex", "dev"} <= {line.split()[2] for line in out.splitlines()[1:]}


def test_a_revoked_key_is_401_on_the_very_next_request(stack: LocalStack):
    key, key_id = create_key(stack, "initech")
    assert call(stack, "GET", "/v1/jobs", key).status_code == 200
    assert keys_cli(stack, "revoke", key_id)[0] == 0
    resp = call(stack, "GET", "/v1/jobs", key)  # no sleep: nothing caches the key
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("credential", ["none", "unknown", "revoked"])
@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_authenticated_route_refuses_a_missing_unknown_or_revoked_key(
    stack: LocalStack, tenants: dict[str, str], acme_job: dict, route: tuple[str, str], credential: str
):
    method, path = route
    key = {"none": None, "unknown": "mr_" + "x" * 32, "revoked": tenants["revoked"]}[credential]
    resp = call(stack, method, fill(path, acme_job["id"]), key)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_authenticated_route_lets_a_valid_key_through(
    stack: LocalStack, tenants: dict[str, str], route: tuple[str, str]
):
    """The other side of the 401s: with a valid key the same request gets past authentication."""
    method, path = route
    resp = call(stack, method, fill(path, "job_" + "0" * 31), tenants["globex"])
    assert resp.status_code != 401, resp.text
    assert resp.status_code < 500, resp.text


@pytest.mark.parametrize("route", JOB_ROUTES, ids=[f"{m} {p}" for m, p in JOB_ROUTES])
def test_another_tenants_job_is_404_exactly_like_a_missing_one(
    stack: LocalStack, tenants: dict[str, str], acme_job: dict, route: tuple[str, str]
):
    method, path = route
    job_id = acme_job["id"]
    missing_id = job_id[:-6] + ("000000" if not job_id.endswith("000000") else "111111")
    foreign = call(stack, method, fill(path, job_id), tenants["globex"])
    missing = call(stack, method, fill(path, missing_id), tenants["globex"])
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == json.loads(missing.text.replace(missing_id, job_id))
    # ... and nothing happened to it: still there for its owner, not canceled.
    own = call(stack, "GET", f"/v1/jobs/{job_id}", tenants["acme"])
    assert own.status_code == 200 and own.json()["status"] != "canceled"


def test_listings_and_cursors_are_per_tenant(
    stack: LocalStack, tenants: dict[str, str], acme_job: dict, sample_request: dict
):
    second = call(stack, "POST", "/v1/jobs", tenants["acme"], json=sample_request)
    assert second.status_code == 202
    page = call(stack, "GET", "/v1/jobs", tenants["acme"], params={"limit": 1}).json()
    assert [j["id"] for j in page["jobs"]] == [second.json()["id"]] and page["next_cursor"]

    theirs = call(stack, "GET", "/v1/jobs", tenants["globex"]).json()
    assert acme_job["id"] not in [j["id"] for j in theirs["jobs"]]
    stolen = call(stack, "GET", "/v1/jobs", tenants["globex"], params={"cursor": page["next_cursor"]})
    assert stolen.status_code == 400 and stolen.json()["error"]["field"] == "cursor"


def test_another_tenants_upload_is_unknown_like_a_missing_one(
    stack: LocalStack, tenants: dict[str, str], sample_request: dict
):
    with cli.Api(stack.api_url, tenants["acme"]) as acme:
        ref = acme.upload(SAMPLES / "character.png")
    missing = "upload:" + "0" * 32
    foreign = call(stack, "POST", "/v1/jobs", tenants["globex"], json={**sample_request, "image": ref})
    unknown = call(stack, "POST", "/v1/jobs", tenants["globex"], json={**sample_request, "image": missing})
    assert foreign.status_code == unknown.status_code == 422
    assert foreign.json() == json.loads(unknown.text.replace(missing, ref))


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_a_whole_cli_session(stack: LocalStack, tenants: dict[str, str], cwd: Path,
                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MOTIONRELAY_URL", stack.api_url)
    monkeypatch.setenv("MOTIONRELAY_API_KEY", tenants["globex"])
    code, out, err = motionrelay("submit", str(SAMPLES / "character.png"), str(SAMPLES / "motion.mp4"),
                                 "--quality", "std", "--orientation", "image", "--wait", "--out", "videos/")
    assert code == 0, err
    job_id = re.search(r"submitted (job_\w+)", out).group(1)
    video = cwd / "videos" / f"{job_id}.mp4"
    assert f"wrote videos/{job_id}.mp4" in out
    assert re.search(r"uploaded character\.png .* as upload:[0-9a-f]{32}", err)

    code, out, _ = motionrelay("jobs", "get", job_id)
    job = json.loads(out)
    assert (code, job["status"], job["request"]["quality"]) == (0, "succeeded", "std")
    assert hashlib.sha256(video.read_bytes()).hexdigest() == job["output"]["sha256"]
    assert job["request"]["image"] != job["request"]["video"]

    code, out, _ = motionrelay("jobs", "list", "--status", "succeeded", "--limit", "5")
    assert code == 0 and job_id in out

    code, out, err = motionrelay("jobs", "cancel", job_id)
    assert (code, out) == (1, "") and err.startswith("error: job_finished: ")

    monkeypatch.setenv("MOTIONRELAY_API_KEY", tenants["acme"])
    code, _, err = motionrelay("jobs", "get", job_id)
    assert code == 1 and err.startswith("error: not_found: ")
