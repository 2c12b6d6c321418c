"""The Kling sandbox's JWT check and task query, written from Kling's auth docs (no adapter)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from motionrelay_local.loopback import loopback_url
from motionrelay_local.sandbox import Sandbox
from motionrelay_local.sandbox.kling import check_jwt

AK, SK = "ak", "sk"


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def token(claims: dict, *, alg: str = "HS256", secret: str = SK) -> str:
    head = b64({"alg": alg, "typ": "JWT"}) + "." + b64(claims)
    sig = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


@pytest.mark.parametrize("claims,kwargs,expected", [
    ({"iss": AK, "exp": 2000, "nbf": 995}, {}, None),
    ({"iss": AK, "exp": 900, "nbf": 0}, {}, 1004),  # expired
    ({"iss": AK, "exp": 3000, "nbf": 1100}, {}, 1003),  # not yet valid
    ({"iss": "other", "exp": 2000, "nbf": 995}, {}, 1002),  # unknown issuer
    ({"iss": AK, "exp": 2000, "nbf": 995}, {"secret": "guess"}, 1002),  # forged
    ({"iss": AK, "exp": 2000, "nbf": 995}, {"alg": "none"}, 1002),
])
def test_jwt_checks(claims, kwargs, expected):
    assert check_jwt(token(claims, **kwargs), AK, SK, now=1000) == expected
    assert check_jwt("not.a.jwt", AK, SK, now=1000) == 1002


def test_external_task_id_queries_and_duplicates(sample_media, loopback_http):
    with Sandbox(api_keys={"kling": SK}) as sb:
        sb.configure("kling", state_seconds=0.05)
        sim = sb.providers["kling"]
        now = int(time.time())
        jwt = token({"iss": sim.access_key, "exp": now + 1800, "nbf": now - 5})
        auth = {"Authorization": "Bearer " + jwt}
        base = sb.base_url("kling") + "/v1/videos/motion-control"
        body = {"model_name": "kling-v2-6", "image_url": loopback_url(sample_media, "character.png"),
                "video_url": loopback_url(sample_media, "motion.mp4"), "character_orientation": "image",
                "mode": "std", "keep_original_sound": "no", "external_task_id": "job_x"}
        assert loopback_http.post(base, json=body).json()["code"] == 1001
        created = loopback_http.post(base, json=body, headers=auth).json()
        assert created["code"] == 0 and created["data"]["task_status"] == "submitted"
        task_id = created["data"]["task_id"]
        sb.wait_task(task_id)
        by_ours = loopback_http.get(f"{base}/job_x", headers=auth).json()["data"]
        assert by_ours["task_id"] == task_id and by_ours["task_status"] == "succeed"
        assert float(by_ours["final_unit_deduction"]) > 0
        again = loopback_http.post(base, json=body, headers=auth)
        assert (again.status_code, again.json()["code"]) == (400, 1201)
        bad = loopback_http.post(base, json={**body, "keep_original_sound": True, "external_task_id": "y"},
                                 headers=auth)
        assert bad.json()["code"] == 1201
