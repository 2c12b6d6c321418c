"""The local Lambda runtime runs a handler as Lambda does: in a process of its own with exactly
the environment it is given, warm across invocations, replaced after a crash or a timeout,
one environment per concurrent invocation, and every AWS call checked against the function's
IAM policy before anything is sent. Real worker processes, a handler written to a temp dir."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from motionrelay_local.faults import Faults
from motionrelay_local.lambda_runtime import (
    FunctionConfig,
    FunctionCrashed,
    FunctionError,
    FunctionTimeout,
    LambdaFunction,
)
from motionrelay_local.template import FunctionSpec

HANDLER = '''
import json, os, time

def lambda_handler(event, context):
    what = event.get("do")
    if what == "env":
        return dict(os.environ)
    if what == "sleep":
        time.sleep(event["seconds"])
    if what == "raise":
        raise ValueError("bad input")
    if what == "exit":
        os._exit(3)
    if what == "import_local":
        import motionrelay_local  # noqa: F401
    if what == "import_package":
        import motionrelay
        return {"file": motionrelay.__file__}
    if what == "dynamodb":
        import boto3
        from botocore.config import Config
        ddb = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                           config=Config(retries={"max_attempts": 0}, connect_timeout=0.2))
        try:
            ddb.get_item(TableName=event["table"], Key={"pk": {"S": "x"}})
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            return {"error": type(exc).__name__, "code": code}
    return {"pid": os.getpid(), "remaining": context.get_remaining_time_in_millis(),
            "request_id": context.aws_request_id}
'''
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/granted"
ALLOW_GRANTED = [{"effect": "Allow", "actions": ["dynamodb:GetItem"], "resources": [TABLE_ARN]}]


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fn")
    (folder / "probe_handler.py").write_text(HANDLER)
    return folder


def function(code_dir: Path, *, timeout: int = 5, statements: list | None = None,
             faults: Faults | None = None, max_concurrency: int = 4, memory: int = 256,
             layer_dirs: tuple[str, ...] = ()) -> LambdaFunction:
    spec = FunctionSpec(logical_id="ProbeFunction", code_dir=code_dir,
                        handler="probe_handler.lambda_handler", timeout=timeout, memory=memory,
                        function_name="probe")
    env = {"ONLY_THIS": "yes", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
           "PATH": "/usr/bin:/bin"}
    config = FunctionConfig(spec=spec, environment=env, statements=statements or [],
                            principal="arn:aws:sts::123456789012:assumed-role/probe-role/probe",
                            max_concurrency=max_concurrency, layer_dirs=layer_dirs)
    return LambdaFunction(config, faults=faults)


@pytest.fixture
def probe(code_dir: Path):
    fn = function(code_dir, statements=ALLOW_GRANTED)
    yield fn
    fn.unload()


def test_the_process_has_exactly_the_functions_environment(probe: LambdaFunction):
    os.environ["MR_ONLY_IN_THE_PARENT"] = "1"
    try:
        env = probe.invoke({"do": "env"})
    finally:
        del os.environ["MR_ONLY_IN_THE_PARENT"]
    assert env["ONLY_THIS"] == "yes"
    assert "MR_ONLY_IN_THE_PARENT" not in env
    # The worker's own bootstrap variables are all there is on top.
    assert set(env) - {"ONLY_THIS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PATH"} <= {
        "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE"}


def test_a_warm_environment_is_reused_and_a_crashed_one_replaced(probe: LambdaFunction):
    first = probe.invoke({})
    assert probe.invoke({})["pid"] == first["pid"]  # warm
    with pytest.raises(FunctionError, match="bad input"):
        probe.invoke({"do": "raise"})
    assert probe.invoke({})["pid"] == first["pid"]  # an exception does not end the environment
    with pytest.raises(FunctionCrashed, match="code 3"):
        probe.invoke({"do": "exit"})
    assert probe.invoke({})["pid"] != first["pid"]  # a new interpreter


def test_a_timeout_kills_the_invocation_and_the_next_one_starts_cold(code_dir: Path):
    fn = function(code_dir, timeout=1)
    try:
        before = fn.invoke({})
        assert 0 < before["remaining"] <= 1000
        with pytest.raises(FunctionTimeout):
            fn.invoke({"do": "sleep", "seconds": 5})
        assert fn.invoke({})["pid"] != before["pid"]
        assert fn.invoke({}, budget_seconds=0.5)["remaining"] <= 500
    finally:
        fn.unload()


def test_concurrent_invocations_get_environments_of_their_own(probe: LambdaFunction):
    results: list[dict] = []

    def call() -> None:
        results.append(probe.invoke({"do": "sleep", "seconds": 0.5}))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["pid"] for r in results}) == 3
    assert len({r["request_id"] for r in results}) == 3


def test_the_local_stack_is_not_importable_from_a_handler(probe: LambdaFunction):
    with pytest.raises(FunctionError, match="ModuleNotFoundError|No module named 'motionrelay_local'"):
        probe.invoke({"do": "import_local"})


def test_the_package_comes_only_from_the_functions_layers(code_dir: Path):
    # A function whose template forgets `Layers:` must fail to import the package, as in Lambda,
    # even though the editable install would find it.
    bare = function(code_dir)
    try:
        with pytest.raises(FunctionError, match="No module named 'motionrelay'"):
            bare.invoke({"do": "import_package"})
    finally:
        bare.unload()
    layer = Path(__file__).resolve().parents[2] / "layers" / "shared"
    with_layer = function(code_dir, layer_dirs=(str(layer),))
    try:
        assert with_layer.invoke({"do": "import_package"})["file"].startswith(str(layer))
    finally:
        with_layer.unload()


def test_an_aws_call_the_policy_does_not_allow_is_access_denied_before_anything_is_sent(
        probe: LambdaFunction):
    # Allowed: the call goes out (and fails to connect: nothing listens on port 9).
    assert probe.invoke({"do": "dynamodb", "table": "granted"})["error"] == "EndpointConnectionError"
    # Not allowed: AccessDenied at once, as AWS answers it.
    assert probe.invoke({"do": "dynamodb", "table": "other"}) == {
        "error": "ClientError", "code": "AccessDeniedException"}


def test_an_injected_crash_kills_the_invocation_at_a_boundary(code_dir: Path):
    fn = function(code_dir, statements=ALLOW_GRANTED, faults=Faults.parse("crash=1,seed=3"))
    try:
        for _ in range(3):
            with pytest.raises(FunctionCrashed, match="signal 9"):
                fn.invoke({"do": "dynamodb", "table": "granted"})
        assert fn.crashes == 3
    finally:
        fn.unload()
