"""Contract tests: every gateway adapter against the sandbox simulating that provider's wire.

The adapters are written from the providers' docs and the sandbox from the same docs, apart
from each other; these tests check that the two halves agree over real loopback HTTP:
submit -> poll -> success with a playable output, task failures, submit errors classified
as retryable, unknown tasks as final, wrong keys refused, and callbacks that verify (or an
adapter that refuses callbacks from a provider that sends none).
"""

from __future__ import annotations

import importlib
import json
import shutil
import time
from collections.abc import Iterator
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from motionrelay.domain.job import ProviderState, ProviderStatus
from motionrelay.providers.base import CallbackRejected, ProviderError, SubmitSpec
from motionrelay_local.loopback import QuietFiles, Receiver, loopback_url, serve, wait_until
from motionrelay_local.sandbox import PROVIDER_CLASSES, Sandbox

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
KIE_HMAC = "contract-kie-hmac"
STATE_SECONDS = 0.05
FINAL = (ProviderState.SUCCEEDED, ProviderState.FAILED)


def _has_adapter(name: str) -> bool:
    try:
        importlib.import_module(f"motionrelay.providers.{name}")
    except ModuleNotFoundError:
        return False
    return True


PROVIDERS = sorted(p for p in PROVIDER_CLASSES if _has_adapter(p))


def _key(provider: str) -> str:
    return f"contract-{provider}-key"


# The credential a wrong value of which must be refused (Kling signs its JWT with the secret key).
SECRET_FIELD = {"kling": "SECRET_KEY"}


# --------------------------------------------------------------------------- servers



@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadingHTTPServer]:
    """The samples over plain HTTP, standing in for the presigned S3 URLs the gateway sends."""
    root = tmp_path_factory.mktemp("contract-media")
    for name in ("character.png", "motion.mp4"):
        shutil.copy(SAMPLES / name, root / name)
    srv = serve(partial(QuietFiles, directory=str(root)))
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(api_keys={p: _key(p) for p in PROVIDER_CLASSES}, kie_hmac_key=KIE_HMAC).start()
    yield sb
    sb.stop()


@pytest.fixture
def receiver() -> Iterator[tuple[ThreadingHTTPServer, type[Receiver]]]:
    handler = type("Receiver", (Receiver,), {"received": []})
    srv = serve(handler)
    yield srv, handler
    srv.shutdown()
    srv.server_close()


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> str:
    name = request.param
    for field, value in sandbox.credentials(name).items():
        monkeypatch.setenv(f"MOTIONRELAY_{name.upper()}_{field}", value)
    sandbox.configure(name, state_seconds=STATE_SECONDS, fail_task=None, fail_submit=None,
                      fail_submit_times=None, callbacks=True, latency=0.0)
    return name


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


# --------------------------------------------------------------------------- helpers


def _adapter(provider: str, sandbox: Sandbox) -> Any:
    from motionrelay.registry import build_adapter

    return build_adapter(provider, base_url=sandbox.base_url(provider))


def _spec(adapter: Any, media: ThreadingHTTPServer, callback_url: str | None = None) -> SubmitSpec:
    caps = adapter.capabilities
    return SubmitSpec(
        image_url=loopback_url(media, "character.png"),
        video_url=loopback_url(media, "motion.mp4"),
        character_orientation="image",
        quality="pro" if "pro" in caps.qualities else sorted(caps.qualities)[0],
        prompt="The character dances." if caps.prompt else None,
        negative_prompt="blurry" if caps.negative_prompt else None,
        keep_original_sound=True,
        callback_url=callback_url if caps.callbacks else None,
    )


def _submit(adapter: Any, http: httpx.Client, spec: SubmitSpec) -> str:
    return adapter.parse_submit(http.send(adapter.build_submit(spec)))


def _poll_until_final(adapter: Any, http: httpx.Client, task_id: str,
                      timeout: float = 30.0) -> list[ProviderStatus]:
    seen: list[ProviderStatus] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(adapter, http, task_id)
        seen.append(status)
        if status.state in FINAL:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish; last status {seen[-1] if seen else None}")


def _status(adapter: Any, http: httpx.Client, task_id: str) -> ProviderStatus:
    """One status read as the gateway makes it: the status, then the result where it is separate (fal)."""
    response = http.send(adapter.build_status(task_id))
    follow = getattr(adapter, "result_request", None)
    result = follow(response) if follow else None
    return adapter.parse_status(http.send(result) if result is not None else response)


def _keys(adapter: Any, http: httpx.Client) -> dict[str, Any]:
    """The verification keys a signing provider publishes (fal's JWKS, Replicate's secret)."""
    build = getattr(adapter, "build_callback_keys_request", None)
    return {"keys": adapter.parse_callback_keys(http.send(build()))} if build else {}


ORDER = [ProviderState.QUEUED, ProviderState.RUNNING, ProviderState.SUCCEEDED]


# --------------------------------------------------------------------------- contract


def test_job_runs_to_a_playable_output(provider: str, sandbox: Sandbox, media, http: httpx.Client) -> None:
    adapter = _adapter(provider, sandbox)
    task_id = _submit(adapter, http, _spec(adapter, media))
    assert task_id
    seen = _poll_until_final(adapter, http, task_id)
    final = seen[-1]
    assert final.state is ProviderState.SUCCEEDED, final
    # States only move forward, and progress (where reported) never goes down.
    ranks = [ORDER.index(s.state) for s in seen]
    assert ranks == sorted(ranks)
    progress = [s.progress for s in seen if s.progress is not None]
    assert progress == sorted(progress)
    output = http.get(final.output_url)
    assert output.status_code == 200
    assert output.content[4:8] == b"ftyp", "the output is an MP4"


def test_task_failure_carries_the_providers_reason(provider: str, sandbox: Sandbox, media,
                                                   http: httpx.Client) -> None:
    sandbox.configure(provider, fail_task="content policy violation (simulated)")
    adapter = _adapter(provider, sandbox)
    final = _poll_until_final(adapter, http, _submit(adapter, http, _spec(adapter, media)))[-1]
    assert final.state is ProviderState.FAILED
    assert final.error_code and final.error_code.startswith("provider_")
    assert "content policy violation" in (final.error_message or "")
    assert final.output_url is None


@pytest.mark.parametrize("code", [429, 500])
def test_submit_overload_and_server_errors_are_retryable(provider: str, sandbox: Sandbox, media,
                                                         http: httpx.Client, code: int) -> None:
    sandbox.configure(provider, fail_submit=code, fail_submit_times=1)
    adapter = _adapter(provider, sandbox)
    with pytest.raises(ProviderError) as err:
        _submit(adapter, http, _spec(adapter, media))
    assert err.value.retryable
    if code == 429:
        assert err.value.code == "provider_rate_limited"
    # The knob was for one submit only: the next one is accepted.
    assert _submit(adapter, http, _spec(adapter, media))


def test_a_wrong_key_is_refused_and_worth_failing_over(provider: str, sandbox: Sandbox, media,
                                                       http: httpx.Client,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    field = SECRET_FIELD.get(provider, "API_KEY")
    monkeypatch.setenv(f"MOTIONRELAY_{provider.upper()}_{field}", "not-the-key")
    adapter = _adapter(provider, sandbox)
    before = len(sandbox.tasks)
    with pytest.raises(ProviderError) as err:
        _submit(adapter, http, _spec(adapter, media))
    assert err.value.retryable  # a configuration fault of this provider: another may serve the job
    assert len(sandbox.tasks) == before


def test_an_unknown_task_is_final(provider: str, sandbox: Sandbox, http: httpx.Client) -> None:
    adapter = _adapter(provider, sandbox)
    with pytest.raises(ProviderError) as err:
        _status(adapter, http, "no-such-task-0000")
    assert not err.value.retryable


def test_callbacks_verify_or_are_refused(provider: str, sandbox: Sandbox, media, http: httpx.Client,
                                         receiver) -> None:
    srv, handler = receiver
    adapter = _adapter(provider, sandbox)
    spec = _spec(adapter, media, callback_url=loopback_url(srv, "cb?token=t0k3n"))
    task_id = _submit(adapter, http, spec)
    _poll_until_final(adapter, http, task_id)
    if not adapter.capabilities.callbacks:
        with pytest.raises(CallbackRejected):
            adapter.verify_callback({"content-type": "application/json"}, b'{"id": "x"}', time.time())
        return
    deadline = time.monotonic() + 10
    while not handler.received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert handler.received, f"{provider} sent no callback"
    call = handler.received[0]
    assert call["path"] == "/cb?token=t0k3n", "the callback URL (and its token) is used as given"
    keys = _keys(adapter, http)
    hint = adapter.verify_callback(call["headers"], call["body"], time.time(), **keys)
    assert hint.task_id == task_id
    # A tampered body naming another task is not accepted as this one.
    forged = call["body"].replace(task_id.encode(), b"someone-elses-task")
    try:
        assert adapter.verify_callback(call["headers"], forged, time.time(), **keys).task_id != task_id
    except CallbackRejected:
        pass


def test_signed_callbacks_refuse_forgeries_and_replays(provider: str, sandbox: Sandbox, media,
                                                       http: httpx.Client, receiver) -> None:
    """Providers that sign (fal: Ed25519 over a JWKS; Replicate: Standard Webhooks) are checked
    over the raw body, the signed headers and the timestamp; any change is refused."""
    srv, handler = receiver
    adapter = _adapter(provider, sandbox)
    if adapter.capabilities.callback_auth not in ("ed25519-jwks", "standard-webhooks"):
        pytest.skip(f"{provider} does not sign its callbacks (URL token + re-fetch)")
    task_id = _submit(adapter, http, _spec(adapter, media, callback_url=loopback_url(srv, "cb?token=t")))
    _poll_until_final(adapter, http, task_id)
    wait_until(lambda: handler.received)
    call = handler.received[0]
    keys = _keys(adapter, http)
    now = time.time()
    assert adapter.verify_callback(call["headers"], call["body"], now, **keys).task_id == task_id
    body, headers = call["body"], call["headers"]
    tampered = body.replace(b'"', b"'", 1) if body.count(b'"') else body + b" "
    with pytest.raises(CallbackRejected):  # the body changed after signing
        adapter.verify_callback(headers, body + b" ", now, **keys)
    with pytest.raises(CallbackRejected):
        adapter.verify_callback(headers, tampered, now, **keys)
    with pytest.raises(CallbackRejected):  # replayed after the window
        adapter.verify_callback(headers, body, now + 400, **keys)
    with pytest.raises(CallbackRejected):  # no signature at all
        adapter.verify_callback({"content-type": "application/json"}, body, now, **keys)
    for name in [h for h in headers if "signature" in h.lower()]:
        forged = {**headers, name: _flip(headers[name])}
        with pytest.raises(CallbackRejected):  # a signature that is not the provider's
            adapter.verify_callback(forged, body, now, **keys)


def _flip(signature: str) -> str:
    """The same signature with one character changed (hex or base64 alike)."""
    i = len(signature) - 3
    return signature[:i] + ("A" if signature[i] != "A" else "B") + signature[i + 1:]


def test_rotated_keys_are_picked_up(provider: str, sandbox: Sandbox, media, http: httpx.Client,
                                    receiver) -> None:
    """After the provider rotates its signing key, the keys fetched before no longer verify
    (CallbackKeysStale: fetch again), the ones fetched now do."""
    from motionrelay.providers.base import CallbackKeysStale

    sim = sandbox.providers[provider]
    if not hasattr(sim, "rotate_key"):
        pytest.skip(f"{provider} has no keys to rotate")
    srv, handler = receiver
    adapter = _adapter(provider, sandbox)
    old = _keys(adapter, http)
    sim.rotate_key(keep_old=False)
    try:
        task_id = _submit(adapter, http, _spec(adapter, media, callback_url=loopback_url(srv, "cb?token=t")))
        _poll_until_final(adapter, http, task_id)
        call = wait_until(lambda: handler.received)[0]
        with pytest.raises(CallbackKeysStale):
            adapter.verify_callback(call["headers"], call["body"], time.time(), **old)
        fresh = _keys(adapter, http)
        assert adapter.verify_callback(call["headers"], call["body"], time.time(), **fresh).task_id == task_id
    finally:
        sim.rotate_key(keep_old=False)


def test_cancel_stops_a_queued_task_where_offered(provider: str, sandbox: Sandbox, media,
                                                  http: httpx.Client) -> None:
    adapter = _adapter(provider, sandbox)
    if not hasattr(adapter, "build_cancel"):
        pytest.skip(f"{provider} documents no cancel")
    sandbox.configure(provider, state_seconds=0.5)
    task_id = _submit(adapter, http, _spec(adapter, media))
    assert adapter.parse_cancel(http.send(adapter.build_cancel(task_id)))
    final = _poll_until_final(adapter, http, task_id)[-1]
    assert final.state is ProviderState.FAILED and final.output_url is None


def test_callbacks_can_be_switched_off(provider: str, sandbox: Sandbox, media, http: httpx.Client,
                                       receiver) -> None:
    srv, handler = receiver
    sandbox.configure(provider, callbacks=False)
    adapter = _adapter(provider, sandbox)
    task_id = _submit(adapter, http, _spec(adapter, media, callback_url=loopback_url(srv, "cb")))
    # Polling alone completes the job: that is what the poller relies on.
    assert _poll_until_final(adapter, http, task_id)[-1].state is ProviderState.SUCCEEDED
    time.sleep(0.2)
    assert handler.received == []


def test_submit_details_reach_the_gateway_where_offered(provider: str, sandbox: Sandbox, media,
                                                        http: httpx.Client) -> None:
    """Providers that report cost or an ETA only in the submit answer (VibeDream) expose it."""
    adapter = _adapter(provider, sandbox)
    details_of = getattr(adapter, "submit_details", None)
    if details_of is None:
        pytest.skip(f"{provider} reports nothing extra at submit")
    response = http.send(adapter.build_submit(_spec(adapter, media)))
    assert adapter.parse_submit(response)
    details = details_of(response)
    assert details is not None and (details.cost or details.eta_seconds)


# --------------------------------------------------------------------------- Kling's own contract


@pytest.fixture
def kling(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    for field, value in sandbox.credentials("kling").items():
        monkeypatch.setenv(f"MOTIONRELAY_KLING_{field}", value)
    sandbox.configure("kling", state_seconds=STATE_SECONDS, fail_task=None, fail_submit=None,
                      fail_submit_times=None, callbacks=True, latency=0.0)
    return _adapter("kling", sandbox)


def test_kling_finds_a_job_by_our_id_and_refuses_it_twice(kling: Any, media, http: httpx.Client) -> None:
    """external_task_id = our job id: an ambiguous submit is looked up by it, and a second
    submit of the same job is refused as a duplicate (ambiguous: look it up), never run twice."""
    job_id = f"job_contract_{time.time_ns()}"
    assert kling.parse_lookup(http.send(kling.build_lookup(job_id)), job_id) is None
    spec = SubmitSpec(**{**_spec(kling, media).__dict__, "job_id": job_id})
    task_id = _submit(kling, http, spec)
    assert kling.parse_lookup(http.send(kling.build_lookup(job_id)), job_id) == task_id
    with pytest.raises(ProviderError) as err:
        _submit(kling, http, spec)
    assert err.value.ambiguous and err.value.code == "provider_duplicate_submit"


def test_kling_refuses_expired_and_forged_tokens(kling: Any, sandbox: Sandbox, http: httpx.Client) -> None:
    from motionrelay.providers.kling import KlingAdapter, make_jwt

    creds = sandbox.credentials("kling")
    base = sandbox.base_url("kling")
    stale = KlingAdapter(creds["ACCESS_KEY"], creds["SECRET_KEY"], base, clock=lambda: time.time() - 3600)
    with pytest.raises(ProviderError) as err:  # exp passed half an hour ago
        _status(stale, http, "1")
    assert err.value.code == "provider_unauthorized" and err.value.http_status == 401
    early = KlingAdapter(creds["ACCESS_KEY"], creds["SECRET_KEY"], base, clock=lambda: time.time() + 600)
    with pytest.raises(ProviderError) as err:  # nbf ten minutes ahead
        _status(early, http, "1")
    assert err.value.code == "provider_unauthorized"
    for token in (make_jwt("someone-else", creds["SECRET_KEY"], time.time()),
                  make_jwt(creds["ACCESS_KEY"], "guessed-secret", time.time()),
                  make_jwt(creds["ACCESS_KEY"], creds["SECRET_KEY"], time.time())[:-4] + "AAAA"):
        answer = http.get(f"{base}/v1/videos/motion-control/1", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and answer.json()["code"] == 1002
    fresh = make_jwt(creds["ACCESS_KEY"], creds["SECRET_KEY"], time.time())
    answer = http.get(f"{base}/v1/videos/motion-control/1", headers={"Authorization": f"Bearer {fresh}"})
    assert answer.status_code == 404 and answer.json()["code"] == 1203, "a good token gets past auth"


def test_kling_calls_back_on_every_status_change(kling: Any, media, http: httpx.Client, receiver) -> None:
    srv, handler = receiver
    task_id = _submit(kling, http, _spec(kling, media, callback_url=loopback_url(srv, "cb?token=t")))
    _poll_until_final(kling, http, task_id)
    calls = wait_until(lambda: handler.received if len(handler.received) >= 2 else None)
    statuses = [json.loads(c["body"])["task_status"] for c in calls]
    assert statuses[0] == "processing" and statuses[-1] == "succeed"
    assert {kling.verify_callback(c["headers"], c["body"], time.time()).task_id for c in calls} == {task_id}
