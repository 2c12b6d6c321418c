"""template.yaml agrees with the code: data resources, handlers, routes, logging, IAM.

The local stack and the other tests build the table, bucket and queues from
`motionrelay.infra.resources`; AWS gets them from template.yaml. These tests keep the two in
step, and check that every function points at a handler that exists. No network, no AWS:
the template is read with cfn-lint's own CloudFormation YAML decoder (it understands the
short-form intrinsics such as !Ref and !Sub).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from motionrelay import settings
from motionrelay.infra import resources

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

# The fixed routes (docs/architecture.md) and the function that must serve each.
REQUIRED_ROUTES = {
    ("POST", "/v1/jobs"): "ApiFunction",
    ("GET", "/v1/jobs/{id}"): "ApiFunction",
    ("POST", "/v1/uploads"): "ApiFunction",
    ("GET", "/v1/webhook-secret"): "ApiFunction",
    ("POST", "/v1/webhook-secret/rotate"): "ApiFunction",
    ("POST", "/v1/callbacks/{provider}/{job_id}"): "WebhookFunction",
    ("GET", "/v1/openapi.json"): "ApiFunction",
    ("GET", "/v1/docs"): "ApiFunction",
}
EXPECTED_FUNCTIONS = {
    "ApiFunction": ("functions/api/", "api_handler.lambda_handler"),
    "WebhookFunction": ("functions/webhook/", "webhook_handler.lambda_handler"),
    "PollerFunction": ("functions/poller/", "poller_handler.lambda_handler"),
    "TickFunction": ("functions/tick/", "tick_handler.lambda_handler"),
    "TransferFunction": ("functions/transfer/", "transfer_handler.lambda_handler"),
    "NotifierFunction": ("functions/notifier/", "notifier_handler.lambda_handler"),
}


# --------------------------------------------------------------------------- helpers


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template the way cfn-lint does; fail on parse errors."""
    template, matches = decode_str(path.read_text(encoding="utf-8"))
    if matches or template is None:
        raise AssertionError(f"{path.name} does not parse: {[str(m) for m in matches]}")
    return template


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == type_}


def function_properties(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A function's properties with Globals.Function merged in (shallow, like SAM for scalars)."""
    merged = dict(template.get("Globals", {}).get("Function", {}))
    merged.update(template["Resources"][name].get("Properties", {}))
    return merged


def http_routes(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """{(METHOD, path): function logical id} for every HttpApi event of every function."""
    routes: dict[tuple[str, str], str] = {}
    for name, fn in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in fn.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties", {})
            key = (str(props.get("Method", "ANY")).upper(), str(props.get("Path", "$default")))
            assert key not in routes, f"route {key} declared twice ({routes.get(key)} and {name})"
            routes[key] = name
    return routes


def policy_statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """The inline IAM statements of a function (its `Policies` documents)."""
    statements: list[dict[str, Any]] = []
    for policy in template["Resources"][function]["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, (
            f"{function}: use explicit policy statements, not {policy!r}"
        )
        statements.extend(policy["Statement"])
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _refers_to(value: Any, logical_id: str) -> bool:
    """Whether an intrinsic-function tree mentions a resource (Ref, GetAtt or ${...} in Sub)."""
    if isinstance(value, dict):
        if value.get("Ref") == logical_id:
            return True
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            target = target[0] if isinstance(target, list) else str(target).split(".")[0]
            if target == logical_id:
                return True
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            text = sub[0] if isinstance(sub, list) else sub
            if f"${{{logical_id}}}" in text or f"${{{logical_id}." in text:
                return True
        return any(_refers_to(v, logical_id) for v in value.values())
    if isinstance(value, list):
        return any(_refers_to(v, logical_id) for v in value)
    return False


def _sub_text(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub[0] if isinstance(sub, list) else sub
    return str(value)


def lifecycle_rule_to_cfn(rule: dict[str, Any]) -> dict[str, Any]:
    """Translate an S3 API lifecycle rule (resources.py) to CloudFormation's spelling.

    Unknown fields raise, so a new rule field in resources.py cannot be silently ignored.
    """
    out: dict[str, Any] = {}
    for key, value in rule.items():
        if key == "ID":
            out["Id"] = value
        elif key == "Status":
            out["Status"] = value
        elif key == "Filter":
            assert set(value) <= {"Prefix"}, f"translate lifecycle filter {value!r}"
            if value.get("Prefix"):
                out["Prefix"] = value["Prefix"]
        elif key == "Expiration":
            assert set(value) == {"Days"}, f"translate lifecycle expiration {value!r}"
            out["ExpirationInDays"] = value["Days"]
        elif key == "AbortIncompleteMultipartUpload":
            out["AbortIncompleteMultipartUpload"] = dict(value)
        else:  # pragma: no cover - guards future edits of resources.py
            raise AssertionError(f"lifecycle field {key!r} has no translation in this test")
    return out


def _normalise(value: Any) -> Any:
    """Plain dict/list/str/int copies of cfn-lint's node objects, for readable comparisons."""
    return json.loads(json.dumps(value))


TEMPLATE = load_template()
FUNCTIONS = sorted(resources_of_type(TEMPLATE, "AWS::Serverless::Function"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return TEMPLATE


# --------------------------------------------------------------------------- basics


def test_is_a_sam_template(template):
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert set(FUNCTIONS) == set(EXPECTED_FUNCTIONS)


def test_globals_runtime_architecture_layer_tracing(template):
    fn_globals = template["Globals"]["Function"]
    assert fn_globals["Runtime"] == "python3.12"
    assert list(fn_globals["Architectures"]) == ["arm64"]
    assert _normalise(fn_globals["Layers"]) == [{"Ref": "SharedLayer"}]
    assert fn_globals["Tracing"] == "Active"
    for name in FUNCTIONS:
        props = function_properties(template, name)
        assert props["Runtime"] == "python3.12", name
        assert list(props["Architectures"]) == ["arm64"], name


def test_shared_layer_is_built_from_layers_shared(template):
    layer = template["Resources"]["SharedLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    props = layer["Properties"]
    assert props["ContentUri"].rstrip("/") == "layers/shared"
    assert "python3.12" in props["CompatibleRuntimes"]
    assert list(props["CompatibleArchitectures"]) == ["arm64"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert layer["Metadata"].get("BuildArchitecture", "arm64") == "arm64"
    assert (ROOT / "layers/shared/requirements.txt").is_file()
    assert (ROOT / "layers/shared/motionrelay").is_dir()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_code_and_handler_exist(template, name):
    props = function_properties(template, name)
    code_uri, handler = props["CodeUri"], props["Handler"]
    assert (code_uri, handler) == EXPECTED_FUNCTIONS[name]
    folder = ROOT / code_uri
    assert folder.is_dir(), f"{name}: CodeUri {code_uri} is not a folder"
    module, _, attr = handler.rpartition(".")
    assert module and attr, f"{name}: Handler {handler!r} must be module.function"
    module_file = folder / (module.replace(".", "/") + ".py")
    assert module_file.is_file(), f"{name}: {module_file.relative_to(ROOT)} does not exist"
    assert f"def {attr}" in module_file.read_text(encoding="utf-8"), (
        f"{name}: {module_file.relative_to(ROOT)} defines no {attr}()"
    )


def test_handler_module_names_are_unique(template):
    modules = [function_properties(template, n)["Handler"].rpartition(".")[0] for n in FUNCTIONS]
    assert len(modules) == len(set(modules)), modules


def test_environment_names_are_the_ones_settings_reads(template):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    required = {
        "MOTIONRELAY_TABLE": {"Ref": "JobsTable"},
        "MOTIONRELAY_BUCKET": {"Ref": "MediaBucket"},
        "MOTIONRELAY_TRANSFER_QUEUE_URL": {"Ref": "TransferQueue"},
        "MOTIONRELAY_NOTIFY_QUEUE_URL": {"Ref": "NotifyQueue"},
        "MOTIONRELAY_PROVIDER_SECRET": {"Ref": "ProviderSecret"},
        "MOTIONRELAY_ROUTING": {"Ref": "Routing"},
        "MOTIONRELAY_PUBLIC_URL": {"Ref": "PublicUrl"},
    }
    for key, value in required.items():
        assert _normalise(env[key]) == value, key
    assert env["POWERTOOLS_SERVICE_NAME"] == "motionrelay"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "MotionRelay"
    assert _normalise(env["POWERTOOLS_LOG_LEVEL"]) == {"Ref": "LogLevel"}
    settings_source = Path(settings.__file__).read_text(encoding="utf-8")
    for key in env:
        if key.startswith("MOTIONRELAY_"):
            assert f'"{key}"' in settings_source, f"settings.py does not read {key}"


def test_parameter_defaults(template):
    params = template["Parameters"]
    assert params["PublicUrl"]["Default"] == ""
    routing = params["Routing"]["Default"].split(",")
    assert routing == ["kie"]
    assert set(routing) <= set(settings.PROVIDERS)
    assert params["LogLevel"]["Default"] == "INFO"
    assert int(params["LogRetentionDays"]["Default"]) == 30


def test_no_function_environment_references_the_http_api(template):
    """SAM embeds the functions in the HttpApi: referencing it back is a circular dependency."""
    for name in FUNCTIONS:
        env = function_properties(template, name).get("Environment", {})
        assert not _refers_to(env, "HttpApi"), name
    assert not _refers_to(template["Globals"]["Function"], "HttpApi")


# --------------------------------------------------------------------------- routes


def test_fixed_routes_are_declared(template):
    routes = http_routes(template)
    for route, function in REQUIRED_ROUTES.items():
        assert routes.get(route) == function, f"{route} -> {routes.get(route)}, want {function}"
    api_ids = {
        json.dumps(_normalise(event["Properties"].get("ApiId")))
        for fn in resources_of_type(template, "AWS::Serverless::Function").values()
        for event in fn["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    assert api_ids == {json.dumps({"Ref": "HttpApi"})}
    assert template["Resources"]["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"


def test_the_tick_runs_every_minute(template):
    props = template["Resources"]["TickFunction"]["Properties"]
    schedules = [e for e in props["Events"].values() if e["Type"] == "Schedule"]
    assert [e["Properties"]["Schedule"] for e in schedules] == ["rate(1 minute)"]
    assert _normalise(props["Environment"]["Variables"]["MOTIONRELAY_POLL_SHARD_QUEUE_URL"]) == {
        "Ref": "PollShardQueue"}


def test_the_poller_polls_one_shard_per_message_from_the_shard_queue(template):
    poller_props = template["Resources"]["PollerFunction"]["Properties"]
    assert not [e for e in poller_props["Events"].values() if e["Type"] == "Schedule"]
    [event] = [e["Properties"] for e in poller_props["Events"].values() if e["Type"] == "SQS"]
    assert _normalise(event["Queue"]) == {"Fn::GetAtt": ["PollShardQueue", "Arn"]}
    assert int(event["BatchSize"]) == 1
    # Every shard of a tick may run at once.
    assert _normalise(event["ScalingConfig"]["MaximumConcurrency"]) == {"Ref": "DueShards"}
    assert int(template["Parameters"]["DueShards"]["MinValue"]) >= 2  # Lambda's minimum
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert _normalise(variables["MOTIONRELAY_DUE_SHARDS"]) == {"Ref": "DueShards"}
    queue = template["Resources"]["PollShardQueue"]["Properties"]
    # Lambda requires the visibility to cover the function's timeout; a message outlives
    # its tick's window only to be dropped as stale.
    assert int(queue["VisibilityTimeout"]) >= int(poller_props["Timeout"])
    assert int(queue["MessageRetentionPeriod"]) <= 600
    # A failed poll is not retried (the next tick is the retry) but kept, and somebody hears.
    redrive = queue["RedrivePolicy"]
    assert int(redrive["maxReceiveCount"]) == 1
    assert _normalise(redrive["deadLetterTargetArn"]) == {"Fn::GetAtt": ["PollShardDLQ", "Arn"]}
    alarms = [a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
              if _normalise(a["Properties"].get("Dimensions")) ==
              [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["PollShardDLQ", "QueueName"]}}]]
    assert len(alarms) == 1 and int(alarms[0]["Threshold"]) == 0


def test_the_tick_may_only_read_leases_and_send_to_the_shard_queue(template):
    actions = sorted(a for s in policy_statements(template, "TickFunction") for a in _as_list(s["Action"]))
    assert actions == ["dynamodb:BatchGetItem", "sqs:SendMessage"]
    assert _allowed(template, "TickFunction", "sqs:SendMessage") == [
        json.dumps({"Fn::GetAtt": ["PollShardQueue", "Arn"]})]


# --------------------------------------------------------------------------- table


def test_jobs_table_matches_resources(template):
    table = template["Resources"]["JobsTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    props = _normalise(table["Properties"])
    want = resources.JOBS_TABLE

    def attr_set(defs):
        return {(d["AttributeName"], d["AttributeType"]) for d in defs}

    assert attr_set(props["AttributeDefinitions"]) == attr_set(want["AttributeDefinitions"])
    assert props["KeySchema"] == want["KeySchema"]  # order matters: HASH then RANGE
    assert props["BillingMode"] == want["BillingMode"]

    got_gsis = {g["IndexName"]: g for g in props["GlobalSecondaryIndexes"]}
    want_gsis = {g["IndexName"]: g for g in want["GlobalSecondaryIndexes"]}
    assert set(got_gsis) == set(want_gsis)
    for name, want_gsi in want_gsis.items():
        got_gsi = got_gsis[name]
        assert got_gsi["KeySchema"] == want_gsi["KeySchema"], name
        got_proj, want_proj = got_gsi["Projection"], want_gsi["Projection"]
        assert got_proj["ProjectionType"] == want_proj["ProjectionType"], name
        assert sorted(got_proj.get("NonKeyAttributes", [])) == sorted(
            want_proj.get("NonKeyAttributes", [])
        ), name
    assert resources.DUE_INDEX in got_gsis and resources.TENANT_INDEX in got_gsis


def test_jobs_table_ttl_pitr_sse_retain(template):
    table = template["Resources"]["JobsTable"]
    props = table["Properties"]
    assert props["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
    assert props["TimeToLiveSpecification"]["Enabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


# --------------------------------------------------------------------------- bucket


def test_bucket_lifecycle_matches_resources(template):
    rules = _normalise(template["Resources"]["MediaBucket"]["Properties"]["LifecycleConfiguration"]["Rules"])
    want = [lifecycle_rule_to_cfn(r) for r in resources.BUCKET_LIFECYCLE["Rules"]]
    for rule in rules:  # an empty Prefix is the same as none
        if rule.get("Prefix") == "":
            del rule["Prefix"]
    assert {r["Id"]: r for r in rules} == {r["Id"]: r for r in want}
    assert len(rules) == len(want)


def test_bucket_is_private_encrypted_unversioned_and_retained(template):
    bucket = template["Resources"]["MediaBucket"]
    props = bucket["Properties"]
    block = props["PublicAccessBlockConfiguration"]
    for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert block[key] is True, key
    assert [r["ObjectOwnership"] for r in props["OwnershipControls"]["Rules"]] == ["BucketOwnerEnforced"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse and sse[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    # A transfer retry must overwrite the same key, not add a version.
    assert props.get("VersioningConfiguration", {}).get("Status") != "Enabled"
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"


def test_bucket_policy_denies_insecure_transport(template):
    policies = [
        p
        for p in resources_of_type(template, "AWS::S3::BucketPolicy").values()
        if _normalise(p["Properties"]["Bucket"]) == {"Ref": "MediaBucket"}
    ]
    assert len(policies) == 1
    statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and str(s["Condition"]["Bool"]["aws:SecureTransport"]).lower() == "false"
        for s in statements
        if "Condition" in s
    )


# --------------------------------------------------------------------------- queues


def test_transfer_queue_matches_resources(template):
    queue = template["Resources"]["TransferQueue"]["Properties"]
    assert int(queue["VisibilityTimeout"]) == resources.TRANSFER_VISIBILITY_SECONDS
    redrive = queue["RedrivePolicy"]
    assert int(redrive["maxReceiveCount"]) == resources.TRANSFER_MAX_RECEIVES
    assert _normalise(redrive["deadLetterTargetArn"]) == {"Fn::GetAtt": ["TransferDLQ", "Arn"]}
    assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
    dlq = template["Resources"]["TransferDLQ"]["Properties"]
    assert int(dlq["MessageRetentionPeriod"]) == 14 * 24 * 3600


def test_transfer_function_timeout_and_event(template):
    props = function_properties(template, "TransferFunction")
    assert int(props["Timeout"]) == resources.TRANSFER_FUNCTION_TIMEOUT
    assert resources.TRANSFER_VISIBILITY_SECONDS >= 6 * int(props["Timeout"])
    sqs_events = [e for e in props["Events"].values() if e["Type"] == "SQS"]
    assert len(sqs_events) == 1
    event = sqs_events[0]["Properties"]
    assert _normalise(event["Queue"]) == {"Fn::GetAtt": ["TransferQueue", "Arn"]}
    assert int(event["BatchSize"]) == 1
    assert list(event["FunctionResponseTypes"]) == ["ReportBatchItemFailures"]


# --------------------------------------------------------------------------- logging


def _log_group_for(template: dict[str, Any], function: str) -> dict[str, Any] | None:
    """The stack's log group of a function: via LoggingConfig, or named /aws/lambda/${Fn}."""
    groups = resources_of_type(template, "AWS::Logs::LogGroup")
    target = function_properties(template, function).get("LoggingConfig", {}).get("LogGroup")
    if isinstance(target, dict) and target.get("Ref") in groups:
        return groups[target["Ref"]]
    for group in groups.values():
        if _sub_text(group["Properties"].get("LogGroupName")) == f"/aws/lambda/${{{function}}}":
            return group
    return None


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_has_a_log_group_with_retention(template, name):
    group = _log_group_for(template, name)
    assert group is not None, f"{name} has no log group in the stack"
    assert group["Properties"].get("RetentionInDays"), f"{name}: log group without retention"


def test_every_log_group_has_retention(template):
    groups = resources_of_type(template, "AWS::Logs::LogGroup")
    assert groups
    for name, group in groups.items():
        assert _normalise(group["Properties"].get("RetentionInDays")) == {"Ref": "LogRetentionDays"}, name
    access = template["Resources"]["HttpApi"]["Properties"].get("AccessLogSettings")
    if access:
        target = _normalise(access["DestinationArn"])
        assert target["Fn::GetAtt"][0] in groups


# --------------------------------------------------------------------------- IAM, secret


@pytest.mark.parametrize("name", FUNCTIONS)
def test_policies_are_explicit_and_scoped(template, name):
    for statement in policy_statements(template, name):
        for action in _as_list(statement["Action"]):
            assert "*" not in action, f"{name}: wildcard action {action}"
        for resource in _as_list(statement["Resource"]):
            assert resource != "*", f"{name}: statement on every resource"


def test_poller_queries_only_the_due_index(template):
    query = [
        s for s in policy_statements(template, "PollerFunction") if "dynamodb:Query" in _as_list(s["Action"])
    ]
    resources_ = [_sub_text(r) for s in query for r in _as_list(s["Resource"])]
    assert resources_ == [f"${{JobsTable.Arn}}/index/{resources.DUE_INDEX}"]


def _allowed(template: dict[str, Any], function: str, action: str) -> list[str]:
    """The resources (Sub text / logical ids) a function may perform `action` on."""
    found = []
    for statement in policy_statements(template, function):
        if statement.get("Effect") == "Allow" and action in _as_list(statement["Action"]):
            found.extend(
                json.dumps(_normalise(r)) if isinstance(r, dict) and "Fn::Sub" not in r else _sub_text(r)
                for r in _as_list(statement["Resource"])
            )
    return found


def test_s3_permissions_match_what_storage_does(template):
    inputs = f"${{MediaBucket.Arn}}/{resources.INPUT_PREFIX}*"
    outputs = f"${{MediaBucket.Arn}}/{resources.OUTPUT_PREFIX}*"
    # The API stages inputs (storage.stream_upload, which aborts a refused multipart
    # upload) and presigns GETs of inputs (for providers) and outputs (for clients).
    assert _allowed(template, "ApiFunction", "s3:PutObject") == [inputs]
    assert _allowed(template, "ApiFunction", "s3:AbortMultipartUpload") == [inputs]
    assert set(_allowed(template, "ApiFunction", "s3:GetObject")) == {inputs, outputs}
    # Inputs staged for a refused request are deleted; uploads are HEADed ("not completed"
    # must be a 404, which needs s3:ListBucket).
    assert _allowed(template, "ApiFunction", "s3:DeleteObject") == [inputs]
    assert _allowed(template, "ApiFunction", "s3:ListBucket") == [
        json.dumps({"Fn::GetAtt": ["MediaBucket", "Arn"]})
    ]
    # The poller re-presigns inputs when it retries a submit; it writes nothing to S3.
    assert _allowed(template, "PollerFunction", "s3:GetObject") == [inputs]
    assert not _allowed(template, "PollerFunction", "s3:PutObject")
    assert not [s for s in policy_statements(template, "WebhookFunction") if "s3:" in str(s["Action"])]
    # The transfer writes outputs only; storage.head() tells "absent" by a 404, which S3
    # returns instead of 403 only to callers allowed s3:ListBucket.
    for action in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"):
        assert _allowed(template, "TransferFunction", action) == [outputs], action
    assert _allowed(template, "TransferFunction", "s3:ListBucket") == [
        json.dumps({"Fn::GetAtt": ["MediaBucket", "Arn"]})
    ]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_that_enqueue_transfers_may_send_only_to_the_transfer_queue(template, name):
    sends = _allowed(template, name, "sqs:SendMessage")
    transfer, notify = (json.dumps({"Fn::GetAtt": [q, "Arn"]}) for q in ("TransferQueue", "NotifyQueue"))
    # Every function that can make a job terminal (fail/complete/cancel) queues its notification.
    if name == "NotifierFunction":
        assert not sends
    elif name == "TickFunction":  # only the shard queue (test_the_tick_may_only_read_leases...)
        assert transfer not in sends and notify not in sends
    elif name == "TransferFunction":
        assert sends == [notify]
    else:
        assert sorted(sends) == sorted([transfer, notify])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_secret_access_is_scoped_to_the_provider_secret(template, name):
    secret_action = "secretsmanager:GetSecretValue"
    reads = [s for s in policy_statements(template, name) if secret_action in _as_list(s["Action"])]
    # The transfer downloads a provider's output URL without credentials; the notifier
    # talks to clients only.
    # The tick only sends messages.
    if name not in ("TransferFunction", "NotifierFunction", "TickFunction"):
        assert reads, f"{name} talks to providers and must read the provider secret"
    for statement in reads:
        assert _normalise(statement["Resource"]) == {"Ref": "ProviderSecret"}, name


def test_provider_secret_holds_every_credential_name_and_no_value(template):
    secret = template["Resources"]["ProviderSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    body = json.loads(secret["Properties"]["SecretString"])
    # Only fields some adapter declares (CREDENTIALS), under the registry's names for them.
    known = {f"MOTIONRELAY_{p.upper()}_{field}" for p in settings.PROVIDERS
             for field in importlib.import_module(f"motionrelay.providers.{p}").CREDENTIALS}
    assert set(body) <= known
    # The placeholder is frozen as first deployed: editing SecretString makes CloudFormation
    # overwrite the operator's filled-in value with empty strings on the next deploy. Providers
    # added since (fal, Replicate, Kling) get their fields with put-secret-value (README).
    assert set(body) == {"MOTIONRELAY_KIE_API_KEY", "MOTIONRELAY_KIE_WEBHOOK_HMAC_KEY",
                         "MOTIONRELAY_NOVITA_API_KEY", "MOTIONRELAY_AIMLAPI_API_KEY",
                         "MOTIONRELAY_PIXAZO_API_KEY", "MOTIONRELAY_VIBEDREAM_API_KEY"}
    assert all(v == "" for v in body.values()), "never commit a credential to the template"


def test_outputs(template):
    outputs = template["Outputs"]
    assert {"ApiUrl", "MediaBucketName", "JobsTableName", "ProviderSecretArn"} <= set(outputs)
    assert _sub_text(outputs["ApiUrl"]["Value"]) == (
        "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    )



def test_every_declared_route_is_served_by_its_handler(template):
    """A route the template declares but the function's resolver does not know would answer
    404 in AWS: each one is sent to its handler (unauthenticated, so nothing is read)."""
    import importlib

    from conftest import FakeContext
    for (method, path), function in http_routes(template).items():
        props = template["Resources"][function]["Properties"]
        module = importlib.import_module(props["Handler"].split(".")[0])
        concrete = path.replace("{provider}", "acme").replace("{job_id}", "job_x").replace("{id}", "job_x")
        event = {
            "version": "2.0", "routeKey": f"{method} {path}", "rawPath": concrete, "rawQueryString": "",
            "headers": {"content-type": "application/json"}, "body": "{}", "isBase64Encoded": False,
            "requestContext": {"http": {"method": method, "path": concrete, "sourceIp": "203.0.113.1"},
                               "domainName": "api.example", "requestId": "r", "stage": "$default"},
        }
        response = module.lambda_handler(event, FakeContext())
        assert "No such route" not in response["body"], f"{method} {path} is not handled by {function}"


def test_idempotency_table_matches_resources(template):
    table = template["Resources"]["IdempotencyTable"]["Properties"]
    for key in ("AttributeDefinitions", "KeySchema", "BillingMode"):
        assert table[key] == resources.IDEMPOTENCY_TABLE[key]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["MOTIONRELAY_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}


# --------------------------------------------------------------------------- notifications


def test_notify_queue_matches_resources(template):
    queue = template["Resources"]["NotifyQueue"]["Properties"]
    assert int(queue["VisibilityTimeout"]) == resources.NOTIFY_VISIBILITY_SECONDS
    assert int(queue["MessageRetentionPeriod"]) == resources.QUEUE_RETENTION_SECONDS
    # The whole backoff schedule fits in the retention period, with room to spare.
    assert sum(resources.NOTIFY_BACKOFF_SECONDS) * 1.2 < resources.QUEUE_RETENTION_SECONDS
    assert max(resources.NOTIFY_BACKOFF_SECONDS) * 1.2 <= 12 * 3600  # SQS's visibility maximum
    redrive = queue["RedrivePolicy"]
    assert int(redrive["maxReceiveCount"]) == resources.NOTIFY_MAX_RECEIVES
    assert _normalise(redrive["deadLetterTargetArn"]) == {"Fn::GetAtt": ["NotifyDLQ", "Arn"]}
    assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
    dlq = template["Resources"]["NotifyDLQ"]["Properties"]
    assert int(dlq["MessageRetentionPeriod"]) == resources.DLQ_RETENTION_SECONDS
    alarm = template["Resources"]["NotifyDLQAlarm"]["Properties"]
    assert _normalise(alarm["Dimensions"]) == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["NotifyDLQ", "QueueName"]}}]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and int(alarm["Threshold"]) == 0


def test_notifier_function_timeout_event_and_permissions(template):
    props = function_properties(template, "NotifierFunction")
    assert int(props["Timeout"]) == resources.NOTIFIER_FUNCTION_TIMEOUT
    assert resources.NOTIFY_VISIBILITY_SECONDS >= 6 * int(props["Timeout"])
    [event] = [e["Properties"] for e in props["Events"].values() if e["Type"] == "SQS"]
    assert _normalise(event["Queue"]) == {"Fn::GetAtt": ["NotifyQueue", "Arn"]}
    assert int(event["BatchSize"]) == resources.NOTIFIER_BATCH_SIZE
    assert list(event["FunctionResponseTypes"]) == ["ReportBatchItemFailures"]
    notify = json.dumps({"Fn::GetAtt": ["NotifyQueue", "Arn"]})
    # The retry delay is set per message; SAM's SQS event policy lacks this action.
    assert _allowed(template, "NotifierFunction", "sqs:ChangeMessageVisibility") == [notify]
    assert _allowed(template, "NotifierFunction", "s3:GetObject") == [
        f"${{MediaBucket.Arn}}/{resources.OUTPUT_PREFIX}*"]
    assert not _allowed(template, "NotifierFunction", "s3:PutObject")
    table = json.dumps({"Fn::GetAtt": ["JobsTable", "Arn"]})
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        assert _allowed(template, "NotifierFunction", action) == [table], action


# --------------------------------------------------------------------------- security posture
# `make lint` runs checkov on template.yaml; a finding that is not fixed is skipped on its
# resource (`Metadata: checkov: skip:`) with the reason. These tests keep the fixes in place
# and hold the skips to what their reasons claim.

CHECKOV_ID = r"^CKV2?_AWS_\d+$"
# Never skipped: these must stay true in the template itself.
NEVER_SKIPPED = {
    "CKV_AWS_95",  # HTTP API access logging
    "CKV_AWS_45",  # no hard-coded secrets in a Lambda environment
    "CKV_AWS_66",  # log group retention
}


def checkov_skips(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """{logical id: its `Metadata: checkov|bridgecrew: skip:` entries}, for resources that have any."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, resource in template["Resources"].items():
        metadata = resource.get("Metadata") or {}
        entries = [
            *((metadata.get("checkov") or {}).get("skip") or []),
            *((metadata.get("bridgecrew") or {}).get("skip") or []),
        ]
        if entries:
            found[name] = entries
    return found


def _skipped_ids(template: dict[str, Any], name: str) -> set[str]:
    return {str(entry.get("id")) for entry in checkov_skips(template).get(name, [])}


def _queue_of(value: Any) -> str | None:
    """The logical id in `!GetAtt <Queue>.Arn`, else None."""
    value = _normalise(value)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        target = target if isinstance(target, list) else str(target).split(".")
        if len(target) == 2 and target[1] == "Arn":
            return str(target[0])
    return None


def _is_encrypted_queue(queue: dict[str, Any]) -> bool:
    props = queue.get("Properties") or {}
    return props.get("SqsManagedSseEnabled") is True or bool(props.get("KmsMasterKeyId"))


def test_tick_async_failures_go_to_an_encrypted_queue_without_retries(template):
    config = template["Resources"]["TickFunction"]["Properties"]["EventInvokeConfig"]
    # The next tick is the retry; an asynchronous retry would only overlap the next run.
    assert int(config["MaximumRetryAttempts"]) == 0
    # A tick that waited long (throttled) is stale, not worth running late.
    assert 60 <= int(config.get("MaximumEventAgeInSeconds", 21600)) <= 600
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    queue_id = _queue_of(on_failure["Destination"])
    queues = resources_of_type(template, "AWS::SQS::Queue")
    assert queue_id in queues, f"on-failure destination {on_failure['Destination']!r}: not a stack queue"
    assert _is_encrypted_queue(queues[queue_id])
    assert int(queues[queue_id]["Properties"]["MessageRetentionPeriod"]) == resources.DLQ_RETENTION_SECONDS
    # Somebody hears about it, and finds it.
    alarms = [
        a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if _normalise(a["Properties"].get("Dimensions")) ==
        [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    ]
    assert len(alarms) == 1, f"one alarm on {queue_id}"
    alarm = alarms[0]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and int(alarm["Threshold"]) == 0
    assert _normalise(alarm["AlarmActions"]) == _normalise(
        template["Resources"]["TransferDLQAlarm"]["Properties"]["AlarmActions"])
    assert any(_normalise(o["Value"]) == {"Ref": queue_id} for o in template["Outputs"].values())


def test_poller_reserved_concurrency_is_opt_in(template):
    """Reserving concurrency fails to deploy on accounts with 10 in total: off by default."""
    param = template["Parameters"]["PollerReservedConcurrency"]
    assert param["Type"] == "Number" and int(param["Default"]) == 0 and int(param["MinValue"]) == 0
    props = template["Resources"]["PollerFunction"]["Properties"]
    reserved = _normalise(props["ReservedConcurrentExecutions"])
    condition, when_set, otherwise = reserved["Fn::If"]
    assert when_set == {"Ref": "PollerReservedConcurrency"}
    assert otherwise == {"Ref": "AWS::NoValue"}  # 0 would throttle every run: it means "unset"
    assert _normalise(template["Conditions"][condition]) == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PollerReservedConcurrency"}, "0"]}]}
    assert "ReservedConcurrentExecutions" not in template["Globals"]["Function"]


@pytest.mark.parametrize("name", sorted(resources_of_type(TEMPLATE, "AWS::SQS::Queue")))
def test_every_queue_is_encrypted(template, name):
    assert _is_encrypted_queue(template["Resources"][name]), f"{name} is not encrypted at rest"


def test_http_api_keeps_its_access_log(template):
    access = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]
    target = _normalise(access["DestinationArn"])
    assert target["Fn::GetAtt"][0] in resources_of_type(template, "AWS::Logs::LogGroup")
    assert "$context.requestId" in access["Format"]


def test_every_checkov_skip_has_a_reason(template):
    import re

    skips = checkov_skips(template)
    assert skips, "template.yaml skips no checkov check: drop this test's premise or restore the skips"
    for name, entries in skips.items():
        ids = [str(entry.get("id")) for entry in entries]
        assert len(ids) == len(set(ids)), f"{name}: a check is skipped twice: {ids}"
        for entry in entries:
            assert re.match(CHECKOV_ID, str(entry.get("id"))), f"{name}: skip entry {entry!r} has no check id"
            comment = str(entry.get("comment") or "").strip()
            assert len(comment.split()) >= 5, f"{name}: skip of {entry['id']} needs a reason, got {comment!r}"
            assert entry["id"] not in NEVER_SKIPPED, f"{name}: {entry['id']} must be fixed, not skipped"
    # checkov also reads inline `# checkov:skip=<id>:<reason>` comments; they need a reason too.
    for line in TEMPLATE_PATH.read_text(encoding="utf-8").splitlines():
        for match in re.finditer(r"(?:checkov|bridgecrew):skip=([^:\s]+)(?::(.*))?", line):
            assert (match.group(2) or "").strip(), f"inline skip of {match.group(1)} has no reason: {line!r}"


def test_checkov_skips_hold_to_their_reasons(template):
    """A skip is kept only while what its reason says is true of the template."""
    queues = resources_of_type(template, "AWS::SQS::Queue")
    for name, entries in checkov_skips(template).items():
        resource = template["Resources"][name]
        props = resource.get("Properties") or {}
        for check in {str(e["id"]) for e in entries}:
            if check == "CKV_AWS_27":  # SQS: the check wants KMS, the queue has SQS-managed SSE
                assert props.get("SqsManagedSseEnabled") is True, name
            elif check == "CKV_AWS_116":  # Lambda DLQ: only asynchronous invocations use one
                events = list((props.get("Events") or {}).values())
                async_events = [e for e in events if e["Type"] not in ("HttpApi", "SQS")]
                if async_events:
                    on_failure = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
                    assert _queue_of(on_failure["Destination"]) in queues, name
                for event in events:
                    if event["Type"] == "SQS":
                        source = queues[_queue_of(event["Properties"]["Queue"])]["Properties"]
                        redrive = source.get("RedrivePolicy") or {}
                        assert _queue_of(redrive.get("deadLetterTargetArn")) in queues, name
            elif check == "CKV_AWS_115":  # reserved concurrency: never set unconditionally
                reserved = _normalise(props.get("ReservedConcurrentExecutions"))
                assert reserved is None or (isinstance(reserved, dict) and "Fn::If" in reserved), name
            elif check == "CKV_AWS_119":  # DynamoDB: AWS managed key, not none
                assert props["SSESpecification"]["SSEEnabled"] is True, name
            elif check == "CKV_AWS_21":  # S3 versioning: off on purpose, bucket retained
                assert resource["DeletionPolicy"] == "Retain", name


def _mentions_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(_mentions_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_key(v, key) for v in value)
    return False


def test_no_function_environment_sets_local_mode(template):
    """MOTIONRELAY_LOCAL lets the code fetch loopback and plain-http URLs: the local stack only."""
    assert not _mentions_key(template["Globals"]["Function"].get("Environment", {}), "MOTIONRELAY_LOCAL")
    for name in FUNCTIONS:
        env = template["Resources"][name]["Properties"].get("Environment", {})
        assert not _mentions_key(env, "MOTIONRELAY_LOCAL"), f"{name} sets MOTIONRELAY_LOCAL"
    for name, fn in resources_of_type(template, "AWS::Lambda::Function").items():
        env = (fn.get("Properties") or {}).get("Environment", {})
        assert not _mentions_key(env, "MOTIONRELAY_LOCAL"), f"{name} sets MOTIONRELAY_LOCAL"
