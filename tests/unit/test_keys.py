"""API keys: `motionrelay keys create|list|revoke` against moto, and what the API does with them."""

from __future__ import annotations

import io
import json
import re

import pytest

from conftest import DEV_KEY
from motionrelay_cli import cli


def keys(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["keys", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def list_jobs_status(key: str) -> int:
    from test_jobs_api import call

    return call("GET", "/v1/jobs", key=key)[0]


class Spy:
    """A DynamoDB client that records which operations were called."""

    def __init__(self, real) -> None:
        self.real, self.calls = real, []

    def __getattr__(self, name: str):
        self.calls.append(name)
        return getattr(self.real, name)


def test_create_prints_the_key_once_and_it_works_at_once(aws):
    code, out, err = keys("create", "--tenant", "acme", "--name", "ci")
    assert code == 0
    raw_key = out.strip()
    assert re.fullmatch(r"mr_[A-Za-z0-9_-]{32}", raw_key)  # stdout: the key alone (KEY=$(...))
    assert re.search(r"created key_[0-9a-f]{12} \(mr_.{6}\.\.\.\) for tenant acme named 'ci'", err)
    assert "only time the key is shown" in err and raw_key not in err
    assert list_jobs_status(raw_key) == 200

    from motionrelay.apikeys import authenticate

    assert authenticate(f"Bearer {raw_key}").tenant_id == "acme"


def test_only_hashes_are_stored(aws):
    import hashlib

    from motionrelay.infra.aws import client

    raw_key = keys("create", "--tenant", "acme")[1].strip()
    items = json.dumps(client("dynamodb").scan(TableName="jobs")["Items"])
    assert raw_key not in items
    assert items.count(hashlib.sha256(raw_key.encode()).hexdigest()) >= 1


def test_list_shows_ids_and_prefixes_never_keys(aws):
    acme = keys("create", "--tenant", "acme", "--name", "ci")[1].strip()
    globex = keys("create", "--tenant", "globex")[1].strip()

    code, out, _ = keys("list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "PREFIX", "TENANT", "NAME", "CREATED", "REVOKED"]
    tenants = sorted(row.split()[2] for row in rows)
    assert tenants == ["acme", "globex", "tenant-a"]  # tenant-a: the fixture's key
    assert acme not in out and globex not in out
    assert f"{acme[:9]}..." in out and f"{globex[:9]}..." in out

    code, out, _ = keys("list", "--tenant", "acme", "--json")
    [listed] = json.loads(out)
    assert set(listed) == {"key_id", "tenant_id", "name", "prefix", "created_at", "revoked_at"}
    assert (listed["tenant_id"], listed["name"], listed["prefix"], listed["revoked_at"]) == (
        "acme", "ci", acme[:9], None)

    assert keys("list", "--tenant", "initech") == (0, "no keys for tenant initech\n", "")


def test_listing_keys_is_a_query_never_a_scan(aws):
    from motionrelay.apikeys import create_key, list_keys
    from motionrelay.infra.aws import client
    from motionrelay.infra.jobs_table import JobStore

    create_key("acme")
    spy = Spy(client("dynamodb"))
    store = JobStore(ddb=spy)
    assert [k.tenant_id for k in list_keys("acme", store=store)] == ["acme"]
    assert len(list_keys(store=store)) == 2
    assert spy.calls == ["query", "query"]


def test_key_items_never_show_up_among_a_tenants_jobs(aws):
    from test_jobs_api import call

    keys("create", "--tenant", "tenant-a")
    status, page = call("GET", "/v1/jobs")
    assert (status, page["jobs"]) == (200, [])


def test_a_revoked_key_is_refused_on_the_very_next_request(aws):
    raw_key = keys("create", "--tenant", "acme")[1].strip()
    key_id = json.loads(keys("list", "--tenant", "acme", "--json")[1])[0]["key_id"]
    assert list_jobs_status(raw_key) == 200

    code, out, _ = keys("revoke", key_id)
    assert code == 0 and out.startswith(f"revoked {key_id} (tenant acme)")
    assert list_jobs_status(raw_key) == 401  # no cache, no delay
    assert list_jobs_status(DEV_KEY) == 200  # other keys are untouched

    code, out, _ = keys("revoke", key_id)
    assert code == 0 and "was already revoked at" in out
    [listed] = json.loads(keys("list", "--tenant", "acme", "--json")[1])
    assert listed["revoked_at"]
    code, out, _ = keys("list")
    assert listed["revoked_at"] in out


@pytest.mark.parametrize("argv,message", [
    (["revoke", "key_000000000000"],
     "error: not_found: No API key with id 'key_000000000000'. (field: key_id)"),
    (["revoke", "mr_not_an_id"], "error: not_found: No API key with id 'mr_not_an_id'."),
    (["create", "--tenant", "a b"], "error: invalid_request: A tenant id is 1-64 letters"),
    (["create", "--tenant", "acme", "--name", "n" * 101],
     "error: invalid_request: A key name is at most 100"),
    (["list", "--table", "nope"], "error: table nope: no such table"),
])
def test_refusals_are_one_line(aws, argv, message):
    code, out, err = keys(*argv)
    assert code == 1 and out == "" and err.startswith(message)
    assert "Traceback" not in err


def test_without_a_table_the_keys_commands_say_how_to_name_one(aws, monkeypatch, tmp_path):
    monkeypatch.delenv("MOTIONRELAY_TABLE")
    monkeypatch.setenv("MOTIONRELAY_LOCAL_STATE", str(tmp_path / "none.json"))
    code, _, err = keys("list")
    assert code == 2 and "--table" in err and "--stack" in err and "make dev" in err


def test_the_make_dev_state_file_is_enough(aws, monkeypatch, tmp_path):
    """With only the state file of a running `make dev`, the keys commands find its table."""
    from motionrelay_cli.config import write_local_state

    monkeypatch.delenv("MOTIONRELAY_TABLE")
    state = write_local_state(tmp_path / "state.json", api_url="http://127.0.0.1:1", api_key="k",
                              endpoint_url="", table="jobs")
    monkeypatch.setenv("MOTIONRELAY_LOCAL_STATE", str(state))
    # moto intercepts AWS's own endpoints only: a state without an endpoint keeps boto3's default.
    code, out, _ = keys("list", "--json")
    assert code == 0 and [k["tenant_id"] for k in json.loads(out)] == ["tenant-a"]
