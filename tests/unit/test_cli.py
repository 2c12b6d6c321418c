"""The `motionrelay` client CLI against a fake API (httpx.MockTransport) that follows the v1
contract: argument parsing, the upload flow, waiting, streamed downloads, error printing."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import httpx
import pytest

from conftest import SAMPLES
from motionrelay_cli import cli
from motionrelay_cli.api import Api, ApiError, CliError, content_type_of
from motionrelay_cli.config import (
    ConfigError,
    read_local_state,
    remove_local_state,
    resolve_api,
    resolve_table,
    write_local_state,
)
from motionrelay_cli.progress import JobProgress, bar, elapsed_text, job_line

API = "https://api.motionrelay.example"
KEY = "mr_cli_test_key"
S3 = "https://media.s3.example"
VIDEO = (SAMPLES / "motion.mp4").read_bytes()
VIDEO_SHA = hashlib.sha256(VIDEO).hexdigest()


def error(status: int, code: str, message: str, field: str | None = None) -> httpx.Response:
    body = {"code": code, "message": message} | ({"field": field} if field else {})
    return httpx.Response(status, json={"error": body})


class FakeApi:
    """/v1/uploads, presigned PUTs, /v1/jobs and the output download, as the API documents them."""

    def __init__(self, states: list[dict] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self.uploaded: dict[str, bytes] = {}
        self.created: list[dict] = []
        self.states = states if states is not None else [
            {"status": "running", "progress": None},
            {"status": "running", "progress": 40},
            {"status": "running", "progress": 40},
            {"status": "succeeded", "progress": 100},
        ]
        self.output = VIDEO
        self.output_sha = VIDEO_SHA
        self.polls = 0
        self.fail_uploads_route = False

    def job(self, **fields) -> dict:
        base = {"id": "job_abc123", "status": "queued", "provider": "kie", "progress": None,
                "output": None, "error": None}
        base.update(fields)
        if base["status"] == "succeeded":
            base["output"] = {"url": f"{S3}/outputs/job_abc123.mp4?X-Amz-Signature=abc",
                              "sha256": self.output_sha, "size_bytes": len(VIDEO),
                              "content_type": "video/mp4", "expires_at": "2030-01-01T00:00:00Z"}
        return base

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests.append(request)
        self.bodies.append(body)
        url = str(request.url)
        if url.startswith(S3):
            assert "authorization" not in request.headers  # presigned: no API key to S3
            if request.method == "PUT":
                self.uploaded[request.url.path] = body
                return httpx.Response(200)
            # The output, in several chunks: the client must stream it.
            chunks = [self.output[i:i + 10_000] for i in range(0, len(self.output), 10_000)]
            return httpx.Response(200, content=iter(chunks), headers={"content-type": "video/mp4"})
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return error(401, "unauthorized", "The API key is not valid.")
        path = request.url.path
        if request.method == "POST" and path == "/v1/uploads":
            if self.fail_uploads_route:
                return httpx.Response(404, json={"message": "Not Found"})
            spec = json.loads(body)
            upload_id = f"{len(self.uploaded) + len(self.requests):032x}"
            put_url = f"{S3}/inputs/uploads/{upload_id}?X-Amz-Signature=s&ct={spec['content_type']}"
            return httpx.Response(201, json={"id": f"upload:{upload_id}", "put_url": put_url,
                                             "expires_at": "2030-01-01T00:00:00Z"})
        if request.method == "POST" and path == "/v1/jobs":
            self.created.append(json.loads(body))
            return httpx.Response(202, json=self.job())
        if request.method == "GET" and path == "/v1/jobs/job_abc123":
            state = self.states[min(self.polls, len(self.states) - 1)]
            self.polls += 1
            return httpx.Response(200, json=self.job(**state))
        if request.method == "GET" and path == "/v1/jobs":
            more = "abc" if "cursor" not in request.url.params else None
            jobs = [self.job(status="running", progress=12)]
            return httpx.Response(200, json={"jobs": jobs, "next_cursor": more})
        if request.method == "POST" and path == "/v1/jobs/job_abc123/cancel":
            return httpx.Response(200, json=self.job(status="canceled"))
        if path.startswith("/v1/jobs/"):
            return error(404, "not_found", "No job with id 'x'.")
        return error(404, "not_found", "No such route.")

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def run(argv: list[str], fake: FakeApi | None = None, transport: httpx.BaseTransport | None = None,
        environ: dict | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"MOTIONRELAY_URL": API, "MOTIONRELAY_API_KEY": KEY} if environ is None else dict(environ)
    # Never the state file of a `make dev` running in this checkout (see _isolated).
    env.setdefault("MOTIONRELAY_LOCAL_STATE", os.environ["MOTIONRELAY_LOCAL_STATE"])
    code = cli.main(argv, stdout=out, stderr=err, environ=env,
                    transport=transport or (fake or FakeApi()).transport())
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Polls a millisecond apart; no state file of a real `make dev` leaks in."""
    monkeypatch.setattr(cli, "POLL_SECONDS", 0.001)
    monkeypatch.setenv("MOTIONRELAY_LOCAL_STATE", str(tmp_path / "no-state.json"))


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    image, video = tmp_path / "me.png", tmp_path / "dance.mp4"
    image.write_bytes((SAMPLES / "character.png").read_bytes())
    video.write_bytes(VIDEO)
    return image, video


# -- parsing ---------------------------------------------------------------------------------


def test_submit_options_map_to_the_job_fields_and_leave_defaults_to_the_api():
    parser = cli.build_parser()
    args = parser.parse_args(["submit", "a.png", "https://x.example/v.mp4"])
    assert cli.job_body(args, "upload:1", "https://x.example/v.mp4") == {
        "image": "upload:1", "video": "https://x.example/v.mp4"}

    args = parser.parse_args([
        "submit", "a.png", "b.mp4", "--orientation", "video", "--quality", "std", "--prompt", "dance",
        "--negative-prompt", "blur", "--no-sound", "--provider", "pixazo",
        "--webhook-url", "https://h.example/", "--metadata", '{"order": 7}', "--wait", "--out", "x.mp4",
        "--url", "https://u.example", "--api-key", "k",
    ])
    assert cli.job_body(args, "i", "v") == {
        "image": "i", "video": "v", "character_orientation": "video", "quality": "std", "prompt": "dance",
        "negative_prompt": "blur", "keep_original_sound": False, "provider": "pixazo",
        "webhook_url": "https://h.example/", "metadata": {"order": 7}}
    assert (args.wait, args.out, args.url, args.api_key) == (True, "x.mp4", "https://u.example", "k")


def test_the_provider_choices_are_the_gateways():
    from motionrelay.settings import PROVIDERS

    assert cli.PROVIDERS == PROVIDERS


@pytest.mark.parametrize("argv", [
    ["submit", "only-one-input.png"],
    ["submit", "a.png", "b.mp4", "--quality", "ultra"],
    ["submit", "a.png", "b.mp4", "--metadata", "[1]"],
    ["jobs", "list", "--status", "lost"],
    ["keys", "create"],  # --tenant is required
    [],
])
def test_usage_errors_exit_2_with_argparse_usage(argv, capsys):
    assert run(argv)[0] == 2
    assert "usage: motionrelay" in capsys.readouterr().err


def test_url_and_key_flags_work_before_or_after_the_command():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers["authorization"]))
        return httpx.Response(200, json={"jobs": [], "next_cursor": None})

    transport = httpx.MockTransport(handler)
    before = ["--url", "https://a.example", "--api-key", "k1", "jobs", "list"]
    after = ["jobs", "list", "--url", "https://b.example", "--api-key", "k2"]
    assert run(before, transport=transport, environ={})[0] == 0
    assert run(after, transport=transport, environ={})[0] == 0
    assert seen == [("https://a.example/v1/jobs", "Bearer k1"), ("https://b.example/v1/jobs", "Bearer k2")]


# -- errors ----------------------------------------------------------------------------------


def test_api_errors_print_code_message_and_field_without_a_traceback(inputs):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/uploads":
            return error(413, "input_too_large", "'size_bytes' is 999; up to 1.", "size_bytes")
        raise AssertionError("nothing after a refused upload")

    code, out, err = run(["submit", *map(str, inputs)], transport=httpx.MockTransport(handler))
    assert code == 1 and out == ""
    assert err == "error: input_too_large: 'size_bytes' is 999; up to 1. (field: size_bytes)\n"


@pytest.mark.parametrize("response,expected", [
    (error(401, "unauthorized", "The API key is not valid."),
     "error: unauthorized: The API key is not valid.\n"),
    (httpx.Response(404, json={"message": "Not Found"}), "error: http_404: Not Found\n"),  # API Gateway's own
    (httpx.Response(502, text="<html><body>Bad gateway</body></html>"),
     "error: http_502: <html><body>Bad gateway"),
])
def test_any_refusal_is_one_line(response, expected):
    code, out, err = run(["jobs", "get", "job_x"], transport=httpx.MockTransport(lambda r: response))
    assert code == 1 and out == "" and err.startswith(expected)
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["jobs", "list"], ["jobs", "get", "job_x"], ["submit", "https://a/i.png",
                                                                                 "https://a/v.mp4"]])
def test_connection_errors_are_one_line_too(argv):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    code, out, err = run(argv, transport=httpx.MockTransport(refuse))
    assert code == 1
    assert err.startswith(f"error: cannot reach {API}: [Errno 111] Connection refused")
    assert "Traceback" not in err


def test_a_missing_input_file_is_named(tmp_path):
    code, _, err = run(["submit", str(tmp_path / "nope.png"), "https://a.example/v.mp4"])
    assert code == 1 and "nope.png: no such file" in err


def test_no_configuration_is_a_usage_error():
    code, _, err = run(["jobs", "list"], environ={})
    assert code == 2 and "MOTIONRELAY_URL" in err and "make dev" in err


# -- uploads and submit ----------------------------------------------------------------------


def test_local_files_are_uploaded_and_urls_passed_through(inputs):
    image, _ = inputs
    fake = FakeApi()
    code, out, err = run(["submit", str(image), "https://cdn.example/dance.mp4", "--quality", "std"], fake)
    assert code == 0, err

    upload_call, put, create = fake.requests
    assert (upload_call.method, upload_call.url.path) == ("POST", "/v1/uploads")
    assert json.loads(fake.bodies[0]) == {"content_type": "image/png", "size_bytes": image.stat().st_size}
    assert put.method == "PUT" and str(put.url).startswith(f"{S3}/inputs/uploads/")
    # Exactly the declared type and length (signed into the URL), not chunked, no API key.
    assert put.headers["content-type"] == "image/png"
    assert put.headers["content-length"] == str(image.stat().st_size)
    assert "transfer-encoding" not in put.headers and "authorization" not in put.headers
    assert fake.bodies[1] == image.read_bytes()
    assert create.headers["idempotency-key"].startswith("cli-")
    [created] = fake.created
    assert created == {"image": created["image"], "video": "https://cdn.example/dance.mp4", "quality": "std"}
    assert created["image"].startswith("upload:")
    assert str(put.url).split("?")[0].endswith(created["image"].removeprefix("upload:"))
    assert "uploaded me.png" in err
    assert out.startswith("submitted job_abc123 (queued, provider kie)")
    assert "motionrelay jobs get job_abc123" in out


def test_a_big_file_is_streamed_in_chunks(tmp_path, monkeypatch):
    import motionrelay_cli.api as api_module

    monkeypatch.setattr(api_module, "CHUNK", 1000)
    video = tmp_path / "big.mov"
    video.write_bytes(b"\x00\x00\x00\x14ftypqt  " + os.urandom(9_000))
    seen: list[int] = []

    class Wire(httpx.BaseTransport):
        """Reads the request body as it is sent (MockTransport would buffer it first)."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "PUT":
                seen.extend(len(c) for c in request.stream)
                assert request.headers["content-type"] == "video/quicktime"
                return httpx.Response(200)
            return httpx.Response(201, json={"id": "upload:" + "a" * 32, "put_url": f"{S3}/u",
                                             "expires_at": "x"})

    with Api(API, KEY, transport=Wire()) as api:
        assert api.upload(video) == "upload:" + "a" * 32
    assert sum(seen) == video.stat().st_size and max(seen) <= 1000 and len(seen) > 1


def test_without_an_uploads_route_small_files_go_inline(inputs):
    image, video = inputs
    fake = FakeApi()
    fake.fail_uploads_route = True
    code, _, err = run(["submit", str(image), str(video)], fake)
    assert code == 0, err
    assert fake.created[0]["image"].startswith("data:image/png;base64,")
    assert fake.created[0]["video"].startswith("data:video/mp4;base64,")
    assert "no /v1/uploads" in err


def test_storage_refusing_the_put_is_reported(inputs):
    image, video = inputs

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            xml = "<Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error>"
            return httpx.Response(403, text=xml)
        return httpx.Response(201, json={"id": "upload:" + "b" * 32, "put_url": f"{S3}/u", "expires_at": "x"})

    code, _, err = run(["submit", str(image), str(video)], transport=httpx.MockTransport(handler))
    assert code == 1
    assert err.startswith(f"error: uploading {image} failed: storage answered 403: "
                          "SignatureDoesNotMatch: bad sig")


@pytest.mark.parametrize("head,name,expected", [
    (b"\x89PNG\r\n\x1a\n", "x.bin", "image/png"),
    (b"\xff\xd8\xff\xe0", "x", "image/jpeg"),
    (b"\x00\x00\x00\x18ftypisom", "x", "video/mp4"),
    (b"\x00\x00\x00\x14ftypqt  ", "x.mp4", "video/quicktime"),  # content wins over the name
    (b"????", "clip.MOV", "video/quicktime"),  # unknown bytes: the extension
])
def test_content_types_are_sniffed_then_guessed(tmp_path, head, name, expected):
    path = tmp_path / name
    path.write_bytes(head + b"\x00" * 32)
    assert content_type_of(path) == expected


def test_an_unknown_file_type_is_refused_before_any_request(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(CliError, match="not a PNG/JPEG image or an MP4/MOV video"):
        content_type_of(path)


def test_a_lost_answer_is_retried_with_the_same_idempotency_key():
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(202, json={"id": "job_1", "status": "queued", "provider": "kie"})

    with Api(API, KEY, transport=httpx.MockTransport(handler), sleep=lambda s: None) as api:
        assert api.create_job({"image": "i", "video": "v"})["id"] == "job_1"
    assert len(keys) == 2 and keys[0] == keys[1]


# -- waiting and downloading -----------------------------------------------------------------


def test_wait_follows_the_job_and_streams_the_video_to_out(inputs, tmp_path):
    fake = FakeApi()
    target = tmp_path / "videos" / "result.mp4"
    code, out, err = run(["submit", *map(str, inputs), "--wait", "--out", str(target)], fake)
    assert code == 0, err
    assert target.read_bytes() == VIDEO
    assert not list(target.parent.glob("*.part"))
    assert f"wrote {target} ({len(VIDEO)} bytes" in out and "verified" in out
    # Off a TTY: one plain line per change (the repeated 40% is not printed again).
    lines = [line for line in err.splitlines() if line.startswith("job_abc123:")]
    assert [line.split("  elapsed")[0] for line in lines] == [
        "job_abc123: queued  provider=kie  progress=-",
        "job_abc123: running  provider=kie  progress=-",
        "job_abc123: running  provider=kie  progress=40%",
        "job_abc123: succeeded  provider=kie  progress=100%",
    ]
    assert "\r" not in err


def test_out_as_a_directory_names_the_file_after_the_job(inputs, tmp_path):
    code, out, _ = run(["submit", *map(str, inputs), "--out", f"{tmp_path}/new/"])  # --out implies --wait
    assert code == 0
    assert (tmp_path / "new" / "job_abc123.mp4").read_bytes() == VIDEO
    code, out, _ = run(["submit", *map(str, inputs), "--out", str(tmp_path / "new")])  # an existing directory
    assert code == 0 and "new/job_abc123.mp4" in out


def test_a_download_that_does_not_match_the_jobs_sha256_is_not_kept(inputs, tmp_path):
    fake = FakeApi()
    fake.output_sha = "0" * 64
    target = tmp_path / "out.mp4"
    code, _, err = run(["submit", *map(str, inputs), "--out", str(target)], fake)
    assert code == 1
    assert f"download corrupt: sha256 {VIDEO_SHA}, the job says {'0' * 64}" in err
    assert not target.exists() and not list(tmp_path.glob("*.part"))


def test_a_failed_job_exits_1_with_its_error(inputs, tmp_path):
    failure = {"code": "generation_failed", "message": "no person"}
    fake = FakeApi(states=[{"status": "failed", "error": failure}])
    code, out, err = run(["submit", *map(str, inputs), "--wait", "--json"], fake)
    assert code == 1
    assert err.rstrip().endswith("error: job job_abc123 failed: generation_failed: no person")
    assert json.loads(out)["status"] == "failed"


def test_waiting_gives_up_after_the_wait_timeout(inputs):
    fake = FakeApi(states=[{"status": "running", "progress": 10}])
    code, _, err = run(["submit", *map(str, inputs), "--wait", "--wait-timeout", "0.05"], fake)
    assert code == 1 and "is still running after" in err
    assert "it goes on (motionrelay jobs get job_abc123)" in err


def test_transient_poll_failures_are_ridden_out():
    answers = iter([httpx.Response(503, json={"message": "Service Unavailable"}),
                    httpx.Response(200, json={"id": "job_1", "status": "running"})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers)

    with Api(API, KEY, transport=httpx.MockTransport(handler), sleep=lambda s: None) as api:
        assert api.poll_job("job_1")["status"] == "running"


# -- progress rendering ----------------------------------------------------------------------


def test_progress_off_a_tty_prints_plain_lines_only_on_change():
    stream = io.StringIO()
    progress = JobProgress(stream, tty=False)
    job = {"id": "job_1", "status": "running", "provider": "novita", "progress": 5}
    for elapsed in (1.0, 2.0, 3.0):
        progress.update(job, elapsed)
    progress.update({**job, "progress": 50}, 4.0)
    progress.end()
    assert stream.getvalue() == ("job_1: running  provider=novita  progress=5%  elapsed=1.0s\n"
                                 "job_1: running  provider=novita  progress=50%  elapsed=4.0s\n")


def test_progress_on_a_tty_redraws_one_line():
    stream = io.StringIO()
    progress = JobProgress(stream, tty=True)
    progress.update({"id": "job_1", "status": "running", "provider": "novita", "progress": 50}, 75.0)
    progress.update({"id": "job_1", "status": "succeeded", "provider": "novita", "progress": 90}, 80.0)
    progress.end()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "job_1  running   novita    [" in text and " 50%  1m15s" in text
    assert "succeeded" in text and "100%" in text  # a finished job's bar is full


def test_bars_and_times():
    assert bar(0.5, 0, 10) == "[#####-----]"
    assert bar(1.5, 0, 4) == "[####]"
    unknown = {bar(None, tick, 10) for tick in range(12)}  # a block sweeping back and forth
    assert len(unknown) > 3 and all(b.count("=") == 4 and len(b) == 12 for b in unknown)
    assert (elapsed_text(3.25), elapsed_text(75), elapsed_text(3725)) == ("3.2s", "1m15s", "1h02m")
    narrow = job_line({"id": "job_1", "status": "queued"}, 1.0, columns=30)
    assert "[" not in narrow and narrow.startswith("job_1  queued")


# -- jobs list/get/cancel, webhook secret ------------------------------------------------------


def test_jobs_list_get_and_cancel():
    code, out, _ = run(["jobs", "list", "--status", "running", "--limit", "5"])
    assert code == 0
    header, row, more = out.splitlines()
    assert header.split() == ["ID", "STATUS", "PROVIDER", "PROGRESS", "CREATED"]
    assert row.split()[:4] == ["job_abc123", "running", "kie", "12%"]
    assert more == "next page: motionrelay jobs list --cursor abc"

    code, out, _ = run(["jobs", "list", "--cursor", "abc", "--json"])
    assert code == 0 and json.loads(out)["next_cursor"] is None

    code, out, _ = run(["jobs", "get", "job_abc123"])
    assert code == 0 and json.loads(out)["id"] == "job_abc123"

    code, out, _ = run(["jobs", "cancel", "job_abc123"])
    assert (code, out) == (0, "canceled job_abc123\n")

    code, out, err = run(["jobs", "get", "job_nope"])
    assert (code, out) == (1, "") and err.startswith("error: not_found: ")


def test_list_query_parameters():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return httpx.Response(200, json={"jobs": [], "next_cursor": None})

    code, out, _ = run(["jobs", "list", "--status", "failed", "--limit", "3", "--cursor", "c1"],
                       transport=httpx.MockTransport(handler))
    assert (code, out, seen) == (0, "no jobs\n", [{"status": "failed", "limit": "3", "cursor": "c1"}])


def test_webhook_secret_get_and_rotate():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        body = {"secret": "whsec_abc", "created_at": "2030-01-01T00:00:00.000Z"}
        if request.method == "POST":
            body |= {"secret": "whsec_new", "previous_expires_at": "2030-01-02T00:00:00.000Z"}
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(handler)
    code, out, err = run(["webhook-secret", "get"], transport=transport)
    assert (code, out) == (0, "whsec_abc\n") and "created 2030-01-01" in err
    code, out, err = run(["webhook-secret", "rotate"], transport=transport)
    assert (code, out) == (0, "whsec_new\n") and "previous secret still verifies until 2030-01-02" in err
    assert calls == [("GET", "/v1/webhook-secret"), ("POST", "/v1/webhook-secret/rotate")]


# -- configuration ---------------------------------------------------------------------------


def test_flags_beat_the_environment_which_beats_make_dev(tmp_path):
    state = write_local_state(tmp_path / "state.json", api_url="http://127.0.0.1:3000", api_key="mr_dev_1",
                              endpoint_url="http://127.0.0.1:5000", table="local-jobs")
    assert state.stat().st_mode & 0o777 == 0o600  # it holds the dev key
    env = {"MOTIONRELAY_LOCAL_STATE": str(state)}

    assert resolve_api(None, None, env).url == "http://127.0.0.1:3000"
    assert resolve_api(None, None, env).api_key == "mr_dev_1"
    env_set = env | {"MOTIONRELAY_URL": "https://prod.example", "MOTIONRELAY_API_KEY": "mr_prod"}
    assert (resolve_api(None, None, env_set).url, resolve_api(None, None, env_set).api_key) == (
        "https://prod.example", "mr_prod")
    assert resolve_api("https://flag.example/", "mr_flag", env_set).url == "https://flag.example"

    # The dev key is only ever sent to the dev stack that issued it.
    with pytest.raises(ConfigError, match="no API key"):
        resolve_api("https://prod.example", None, env)
    assert resolve_api("http://127.0.0.1:3000/", None, env).api_key == "mr_dev_1"

    table = resolve_table(None, None, None, environ=env)
    assert (table.table, table.endpoint_url, table.region, table.local) == (
        "local-jobs", "http://127.0.0.1:5000", "us-east-1", True)
    table = resolve_table(None, None, "eu-west-1", environ=env | {"MOTIONRELAY_TABLE": "prod-jobs"})
    assert (table.table, table.endpoint_url, table.region) == ("prod-jobs", None, "eu-west-1")
    assert not table.local
    assert resolve_table("flag-jobs", "http://x", None, environ=env).table == "flag-jobs"

    remove_local_state(state)
    assert not state.exists()
    with pytest.raises(ConfigError, match="make dev"):
        resolve_table(None, None, None, environ=env)


def test_a_state_file_left_by_a_dead_make_dev_is_ignored(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, check=True)
    state = write_local_state(tmp_path / "s.json", api_url="http://127.0.0.1:1", api_key="k",
                              endpoint_url="e", table="t", pid=int(gone.stdout))
    assert read_local_state({"MOTIONRELAY_LOCAL_STATE": str(state)}) is None
    remove_local_state(state)  # not ours: left alone
    assert state.exists()


def test_the_stack_option_reads_the_table_from_cloudformation(aws):
    import boto3

    template = {"Resources": {"T": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"JobsTableName": {"Value": "jobs"}}}
    boto3.client("cloudformation").create_stack(StackName="motionrelay", TemplateBody=json.dumps(template))
    assert resolve_table(None, None, None, stack="motionrelay", environ={}).table == "jobs"


def test_api_error_str():
    assert str(ApiError(400, "invalid_request", "bad", "quality")) == "invalid_request: bad (field: quality)"


def test_each_make_dev_has_its_own_state_file_and_the_cli_picks_or_asks(tmp_path, monkeypatch):
    from motionrelay_cli.config import state_filename

    monkeypatch.delenv("MOTIONRELAY_LOCAL_STATE", raising=False)
    monkeypatch.setattr("motionrelay_cli.config.REPO_ROOT", tmp_path)  # not this checkout's stacks
    env: dict[str, str] = {}
    first = write_local_state(tmp_path / state_filename(3000), api_url="http://127.0.0.1:3000",
                              api_key="mr_dev_a", endpoint_url="http://127.0.0.1:5000", table="jobs-a")
    assert resolve_api(None, None, env, cwd=tmp_path).api_key == "mr_dev_a"  # one running: that one
    write_local_state(tmp_path / state_filename(3001), api_url="http://127.0.0.1:3001", api_key="mr_dev_b",
                      endpoint_url="http://127.0.0.1:5001", table="jobs-b")
    with pytest.raises(ConfigError, match=r"several .* \(ports 3000, 3001\): pass --port"):
        resolve_api(None, None, env, cwd=tmp_path)
    assert resolve_api(None, None, env, cwd=tmp_path, port=3001).api_key == "mr_dev_b"
    assert resolve_table(None, None, None, environ=env, cwd=tmp_path, port=3001).table == "jobs-b"
    asked = resolve_api(None, None, env, cwd=tmp_path, choose=lambda states: states[0])
    assert asked.url == "http://127.0.0.1:3000"
    with pytest.raises(ConfigError, match="no `make dev` is running on port 4000"):
        resolve_api(None, None, env, cwd=tmp_path, port=4000)
    # Stopping one leaves the other found.
    remove_local_state(first)
    assert resolve_api(None, None, env, cwd=tmp_path).api_key == "mr_dev_b"
    # The dev key of the stack at a given URL, whichever file holds it.
    assert resolve_api("http://127.0.0.1:3001", None, env, cwd=tmp_path).api_key == "mr_dev_b"


def test_port_is_an_option_of_every_api_and_keys_command():
    from motionrelay_cli.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["jobs", "list", "--port", "3001"]).port == 3001
    assert parser.parse_args(["--port", "3001", "submit", "a.png", "b.mp4"]).port == 3001
    assert parser.parse_args(["keys", "list", "--port", "3002"]).port == 3002


# -- polish: local checks, --version, examples, honest progress --------------------------------


def _nothing_sent(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"{request.method} {request.url}: nothing may be sent for a refused input")


@pytest.mark.parametrize(("make", "kind", "code"), [
    (lambda: __import__("mediagen").image(200, 200), "image", "input_too_small"),
    (lambda: __import__("mediagen").image(300, 1000), "image", "bad_aspect_ratio"),
    (lambda: b"hello, not an image at all\n", "image", "unsupported_media"),
    (lambda: __import__("mediagen").video(2), "video", "input_too_short"),
    (lambda: __import__("mediagen").video(12), "video", "input_too_long"),
    (lambda: __import__("mediagen").image(480, 720), "video", "unsupported_media"),  # a PNG as the video
])
def test_inputs_are_checked_locally_with_the_apis_codes_before_any_upload(inputs, tmp_path, make, kind, code):
    image, video = inputs
    bad = tmp_path / ("bad.png" if kind == "image" else "bad.mp4")
    bad.write_bytes(make())
    argv = ["submit", str(bad if kind == "image" else image), str(bad if kind == "video" else video)]
    status, out, err = run(argv, transport=httpx.MockTransport(_nothing_sent))
    assert status == 1 and out == ""
    assert err.startswith(f"error: {code}: ") and err.endswith(f"(field: {kind})\n")
    assert "checked locally; nothing was uploaded" in err and "Traceback" not in err


def test_a_12_s_video_passes_locally_with_orientation_video(inputs, tmp_path):
    import mediagen

    image, _ = inputs
    long_video = tmp_path / "long.mp4"
    long_video.write_bytes(mediagen.video(12))
    fake = FakeApi()
    status, _, err = run(["submit", str(image), str(long_video), "--orientation", "video"], fake)
    assert status == 0, err
    assert fake.created[0]["character_orientation"] == "video"


def test_local_checks_can_be_left_to_the_api(inputs, tmp_path):
    import mediagen

    image, _ = inputs
    short = tmp_path / "short.mp4"
    short.write_bytes(mediagen.video(2))
    fake = FakeApi()
    status, _, err = run(["submit", str(image), str(short), "--no-local-checks"], fake)
    assert status == 0, err  # the fake API takes it; the real one would refuse it with the same code
    assert len(fake.uploaded) == 2


def test_version_and_examples(capsys):
    from motionrelay.version import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"motionrelay {__version__}"
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "motionrelay submit samples/character.png" in text and "listen" in text
    assert cli.main(["submit", "--help"]) == 0
    assert "--webhook-url https://hooks.example.com" in capsys.readouterr().out


def test_a_provider_without_progress_shows_elapsed_against_its_typical_time_not_a_bar():
    job = {"id": "job_1", "status": "queued", "stage": "provider_queued", "provider": "kie", "progress": None,
           "provider_reports_progress": False, "typical_run_seconds": [60.0, 180.0]}
    line = job_line(job, 12.0, columns=120)
    assert line == "job_1  provider_queued  kie       12.0s (usually 1m00s-3m00s)"
    running = job_line({**job, "status": "running", "stage": "provider_running"}, 75.0, columns=120)
    assert "provider_running" in running and "1m15s (usually 1m00s-3m00s)" in running and "[" not in running
    placing = job_line({**job, "stage": "placing", "provider": None}, 0.4, columns=120)
    assert placing.split() == ["job_1", "placing", "-", "0.4s"]
    # A provider that reports progress keeps its bar.
    novita = {**job, "status": "running", "stage": "provider_running", "provider": "novita", "progress": 40,
              "provider_reports_progress": True}
    assert "[" in job_line(novita, 5.0, columns=120) and " 40%" in job_line(novita, 5.0, columns=120)
    # Off a TTY, the stage is in the line and a new stage is a new line.
    stream = io.StringIO()
    progress = JobProgress(stream, tty=False)
    progress.update(job, 1.0)
    progress.update({**job, "status": "running", "stage": "provider_running"}, 2.0)
    progress.update({**job, "status": "running", "stage": "transferring"}, 3.0)
    lines = stream.getvalue().splitlines()
    assert lines[0] == ("job_1: queued (provider_queued)  provider=kie  progress=-  elapsed=1.0s  "
                        "(usually 1m00s-3m00s)")
    assert lines[1].startswith("job_1: running (provider_running)") and lines[2].startswith(
        "job_1: running (transferring)") and "usually" not in lines[2]
