"""One Lambda execution environment: a fresh interpreter that imports one handler and serves
its invocations, one at a time, until it is recycled.

Started by `lambda_runtime.ExecutionEnvironment` as `python -m motionrelay_local.worker FD`
with exactly the function's environment; FD is its end of a socket pair that carries
pickled messages (see `lambda_runtime` for the protocol). Before the handler is imported:
- every botocore API call is checked against the function's IAM policy (`iam.py`) and
  fails with AccessDenied as in AWS when the policy does not allow its action on its
  resource; presigned URLs that the policy would not let the role use stop working;
- every AWS call and every HTTP request is an I/O boundary where an injected crash
  (`MOTIONRELAY_LOCAL_FAULTS=crash=P`) can kill the process: SIGKILL, no exception
  handler, no `finally`, as a Lambda timeout or out-of-memory kill;
- the local stack's own package leaves `sys.path`, so a handler that imports it fails
  here as it would in Lambda.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

_state: dict[str, Any] = {
    "boundaries": 0,  # I/O boundaries passed in the current invocation
    "crash_at": None,  # die at this boundary (1-based), or None
    "decisions": [],  # IAM decisions of the current invocation, reported with its result
    "visibility_set": [],  # receipt handles the invocation set a visibility timeout for
}
_lock = threading.Lock()


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def boundary() -> None:
    """An I/O boundary: the injected crash happens here when its turn comes."""
    with _lock:
        _state["boundaries"] += 1
        due = _state["crash_at"] is not None and _state["boundaries"] >= _state["crash_at"]
    if due:
        _die()


# -- IAM ------------------------------------------------------------------------------


class _Enforcer:
    def __init__(self, policy: Any, principal: str, region: str, secret_arns: dict[str, str]) -> None:
        from motionrelay_local.iam import requests_for  # bound now: the package leaves sys.modules

        self.requests_for = requests_for
        self.policy = policy
        self.principal = principal
        self.region = region
        self.secret_arns = secret_arns

    def secret_arn(self, secret_id: str) -> str:
        return self.secret_arns.get(secret_id, f"arn:aws:secretsmanager:{self.region}:000000000000:secret:"
                                    f"{secret_id}")

    def check(self, service: str, operation: str, params: dict) -> Any:
        """The first denied decision of this call, or None when every request is allowed."""
        denied = None
        for request in self.requests_for(service, operation, params, region=self.region,
                                    secret_arn=self.secret_arn):
            decision = self.policy.decide(request)
            with _lock:
                _state["decisions"].append((request.action, request.resource, decision.allowed))
            if not decision.allowed and denied is None:
                denied = decision
        return denied


def _is_404(exc: Any) -> bool:
    return str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")) == "404"


def _missing_key_without_list_bucket(enforcer: _Enforcer, params: dict, operation: str, exc: Any) -> None:
    """S3 answers a missing key with 403, not 404, to a caller without s3:ListBucket on the bucket
    (it must not learn what does not exist)."""
    from botocore.exceptions import ClientError

    denied = enforcer.check("s3", "ListObjectsV2", {"Bucket": params.get("Bucket", "")})
    if denied is not None:
        code = "403" if operation == "HeadObject" else "AccessDenied"
        raise ClientError({"Error": {"Code": code, "Message": "Access Denied"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, operation) from exc


def _install_iam(enforcer: _Enforcer) -> None:
    import botocore.client
    import botocore.signers
    from botocore.exceptions import ClientError

    original_call = botocore.client.BaseClient._make_api_call

    def _make_api_call(self: Any, operation_name: str, api_params: dict) -> Any:
        service = self.meta.service_model.service_name
        denied = enforcer.check(service, operation_name, api_params)
        if denied is not None:
            code = "AccessDenied" if service in ("s3", "sqs") else "AccessDeniedException"
            raise ClientError(
                {"Error": {"Code": code, "Message": denied.message(enforcer.principal)},
                 "ResponseMetadata": {"HTTPStatusCode": 403 if service == "s3" else 400}},
                operation_name,
            )
        if service == "sqs" and operation_name == "ChangeMessageVisibility":
            with _lock:  # the event source mapping must leave that message's visibility alone
                _state["visibility_set"].append(str(api_params.get("ReceiptHandle")))
        boundary()
        try:
            return original_call(self, operation_name, api_params)
        except ClientError as exc:
            if service == "s3" and operation_name in ("GetObject", "HeadObject") and _is_404(exc):
                _missing_key_without_list_bucket(enforcer, api_params, operation_name, exc)
            raise
        finally:
            boundary()

    botocore.client.BaseClient._make_api_call = _make_api_call

    original_presign = botocore.signers.generate_presigned_url

    def generate_presigned_url(self: Any, ClientMethod: str, Params: Any = None,  # noqa: N803 - boto3's
                               ExpiresIn: int = 3600, HttpMethod: Any = None) -> str:
        operation = self.meta.method_to_api_mapping.get(ClientMethod, ClientMethod)
        params = dict(Params or {})
        denied = enforcer.check(self.meta.service_model.service_name, operation, params)
        if denied is not None:
            # Presigning is local arithmetic and succeeds in AWS too; the URL then fails when
            # used. Here it names a bucket that does not exist, so using it fails as well.
            print(f"[mrlocal iam] presigned {operation} will not work: {denied.message(enforcer.principal)}",
                  file=sys.stderr, flush=True)
            if "Bucket" in params:
                params["Bucket"] = "mrlocal-access-denied"
        return original_presign(self, ClientMethod, Params=params, ExpiresIn=ExpiresIn, HttpMethod=HttpMethod)

    botocore.signers.generate_presigned_url = generate_presigned_url


def _install_http_boundaries() -> None:
    import httpx

    sync_send = httpx.HTTPTransport.handle_request
    async_send = httpx.AsyncHTTPTransport.handle_async_request

    def handle_request(self: Any, request: Any) -> Any:
        boundary()
        response = sync_send(self, request)
        boundary()
        return response

    async def handle_async_request(self: Any, request: Any) -> Any:
        boundary()
        response = await async_send(self, request)
        boundary()
        return response

    httpx.HTTPTransport.handle_request = handle_request
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request


# -- the runtime loop -------------------------------------------------------------------


class LambdaContext:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, fn: dict, request_id: str, deadline: float) -> None:
        self.function_name = fn["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = fn["function_arn"]
        self.memory_limit_in_mb = fn["memory"]
        self.aws_request_id = request_id
        self.log_group_name = fn["log_group_name"]
        self.log_stream_name = fn["log_stream_name"]
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException) -> dict:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc)}


def _load_handler(init: dict) -> Any:

    code_dir = init["code_dir"]
    module_path, _, attr = init["handler"].rpartition(".")
    source = os.path.join(code_dir, *module_path.split(".")) + ".py"
    spec = importlib.util.spec_from_file_location(module_path, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"Unable to import module '{module_path}': no such file {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_path] = module
    spec.loader.exec_module(module)
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise AttributeError(f"Handler '{attr}' missing on module '{module_path}'")
    return handler


LOCAL_ONLY_PACKAGES = ("motionrelay_local", "motionrelay_cli")


class _NotInLambda:
    """A meta path finder that refuses the local tooling (the editable install would find it)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in LOCAL_ONLY_PACKAGES:
            raise ModuleNotFoundError(f"No module named {name!r} (the local stack does not exist in Lambda)",
                                      name=name)


class _FromDeployedCode:
    """A meta path finder that takes the package only from the function's code or its layers,
    as Lambda would: a function whose template forgets the layer fails to import it here too,
    instead of finding the editable install."""

    roots: list[str] = []

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> Any:
        if name != DEPLOYED_PACKAGE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, cls.roots)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the function's code or layers)",
                                      name=name)
        return spec


DEPLOYED_PACKAGE = "motionrelay"


def _leave_local_tooling(local_dir: str) -> None:
    """Lambda has no local stack: drop its folder from the path and its modules from the cache
    (what is already bound here keeps working), so a handler importing it fails."""
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != local_dir]
    for name in list(sys.modules):
        if name.split(".")[0] in LOCAL_ONLY_PACKAGES:
            sys.modules.pop(name, None)
    sys.meta_path.insert(0, _NotInLambda)


def serve(conn: Connection) -> None:
    init = conn.recv()
    started = time.monotonic()
    try:
        from motionrelay_local.iam import Policy, Statement

        policy = Policy(Statement(**s) for s in init["statements"])
        enforcer = _Enforcer(policy, init["principal"], init["region"], init["secret_arns"])
        _install_iam(enforcer)
        _install_http_boundaries()
        # Lambda's import path: the function's code first, then the layer (/opt/python).
        sys.path[:0] = [init["code_dir"], *init["layer_dirs"]]
        _FromDeployedCode.roots = [init["code_dir"], *init["layer_dirs"]]
        for name in list(sys.modules):  # anything the runtime imported before came from elsewhere
            if name.split(".")[0] == DEPLOYED_PACKAGE:
                sys.modules.pop(name, None)
        sys.meta_path.insert(0, _FromDeployedCode)
        _leave_local_tooling(init["local_dir"])
        handler = _load_handler(init)
    except BaseException as exc:  # noqa: BLE001 - an init error is reported, as Lambda does
        conn.send({"op": "init_error", "error": _error(exc)})
        return
    conn.send({"op": "ready", "init_ms": int((time.monotonic() - started) * 1000)})
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message.get("op") != "invoke":
            return
        with _lock:
            _state.update(boundaries=0, crash_at=message.get("crash_at"), decisions=[], visibility_set=[])
        context = LambdaContext(init["function"], message["request_id"], message["deadline"])
        try:
            reply = {"op": "result", "value": handler(message["event"], context)}
        except Exception as exc:  # noqa: BLE001 - the runtime reports it; the environment lives on
            traceback.print_exc()
            reply = {"op": "error", "error": _error(exc)}
        if _state["crash_at"] is not None:
            _die()  # the crash point came after the last boundary: the work is done, the answer lost
        with _lock:
            reply["decisions"] = list(_state["decisions"])
            reply["boundaries"] = _state["boundaries"]
            reply["visibility_set"] = list(_state["visibility_set"])
        try:
            conn.send(reply)
        except (TypeError, ValueError) as exc:  # an unpicklable result: Lambda's serialisation error
            conn.send({"op": "error", "error": _error(exc), "decisions": reply["decisions"],
                       "boundaries": reply["boundaries"]})


def main() -> None:
    fd = int(sys.argv[1])
    # The runtime's own stdout/stderr stay the pipes the parent reads; the channel is FD.
    serve(Connection(fd))


if __name__ == "__main__":
    main()
