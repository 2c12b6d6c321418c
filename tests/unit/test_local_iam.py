"""The local IAM check: wildcard matching, IAM's evaluation order, the API call -> IAM action and
resource mapping, SAM's implicit policies, and the least-privilege report. Pure functions, no moto."""

from __future__ import annotations

import pytest

from motionrelay_local.iam import (
    ACCOUNT_ID,
    Decision,
    Policy,
    Request,
    Statement,
    action_matches,
    managed_policy,
    requests_for,
    resource_matches,
    sam_policy_template,
    statements_from_document,
    unused_grants,
)

REGION = "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/jobs"
ROLE = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/PollerRole/motionrelay-poller"


def _tuple(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def allow(
    actions: str | tuple[str, ...], resources: str | tuple[str, ...], sid: str = "", source: str = ""
) -> Statement:
    return Statement("Allow", _tuple(actions), _tuple(resources), sid=sid, source=source)


def req(service: str, operation: str, **params: object) -> list[Request]:
    return requests_for(service, operation, params, region=REGION)


def one(service: str, operation: str, **params: object) -> Request:
    (request,) = req(service, operation, **params)
    return request


# ---------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("dynamodb:GetItem", "dynamodb:GetItem", True),
        ("DynamoDB:getitem", "dynamodb:GetItem", True),  # actions are case-insensitive
        ("dynamodb:Get*", "dynamodb:GetItem", True),
        ("dynamodb:Get*", "dynamodb:BatchGetItem", False),
        ("dynamodb:*", "dynamodb:Query", True),
        ("s3:*", "dynamodb:Query", False),  # the service prefix is part of the pattern
        ("*", "xray:PutTraceSegments", True),
        ("sqs:SendMessage*", "sqs:SendMessage", True),
        ("s3:?etObject", "s3:GetObject", True),
        ("s3:?etObject", "s3:GGetObject", False),  # ? is exactly one character
        ("dynamodb:GetItem", "dynamodb:GetItems", False),  # whole-string match
    ],
)
def test_action_matching(pattern: str, action: str, expected: bool) -> None:
    assert action_matches(pattern, action) is expected


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("*", "arn:aws:s3:::b/inputs/x", True),
        ("arn:aws:s3:::b/*", "arn:aws:s3:::b/inputs/deep/x.mp4", True),  # * crosses /
        ("arn:aws:s3:::*/inputs/*", "arn:aws:s3:::b/inputs/x", True),
        ("arn:aws:dynamodb:*:*:table/jobs", TABLE, True),  # * crosses :
        ("arn:aws:s3:::b/Inputs/*", "arn:aws:s3:::b/inputs/x", False),  # resources are case-sensitive
        ("arn:aws:s3:::b", "arn:aws:s3:::b/x", False),
        ("arn:aws:s3:::b/x?", "arn:aws:s3:::b/x1", True),
        ("arn:aws:s3:::b/x?", "arn:aws:s3:::b/x12", False),
        ("arn:aws:s3:::b.c/x", "arn:aws:s3:::bXc/x", False),  # regex metacharacters are literal
        (TABLE, TABLE + "/index/due", False),
    ],
)
def test_resource_matching(pattern: str, resource: str, expected: bool) -> None:
    assert resource_matches(pattern, resource) is expected


# ---------------------------------------------------------------- evaluation


def test_allow_and_implicit_deny() -> None:
    grant = allow("dynamodb:GetItem", TABLE, sid="JobsTable", source="inline")
    policy = Policy([grant])
    decision = policy.decide(Request("dynamodb:GetItem", TABLE))
    assert decision == Decision(True, Request("dynamodb:GetItem", TABLE), grant)
    denied = policy.decide(Request("dynamodb:PutItem", TABLE))
    assert not denied.allowed and denied.statement is None and not denied.explicit_deny


def test_explicit_deny_beats_allow_whatever_the_order() -> None:
    deny = Statement("Deny", ("s3:DeleteObject",), ("arn:aws:s3:::b/*",), sid="NoDeletes")
    grant = allow("s3:*", "*")
    request = Request("s3:DeleteObject", "arn:aws:s3:::b/x")
    for statements in ([grant, deny], [deny, grant]):
        decision = Policy(statements).decide(request)
        assert not decision.allowed and decision.statement is deny and decision.explicit_deny
    # The Deny does not reach what it does not name.
    assert Policy([grant, deny]).decide(Request("s3:GetObject", "arn:aws:s3:::b/x")).statement is grant


def test_not_action_and_not_resource() -> None:
    everything_but_iam = Statement("Allow", (), ("*",), not_actions=("iam:*",))
    policy = Policy([everything_but_iam])
    assert policy.decide(Request("s3:GetObject", "arn:aws:s3:::b/x")).allowed
    assert not policy.decide(Request("IAM:CreateUser", "*")).allowed  # NotAction is case-insensitive too

    outside_secret = Statement("Deny", ("s3:*",), (), not_resources=("arn:aws:s3:::b/public/*",))
    policy = Policy([allow("s3:GetObject", "*"), outside_secret])
    assert policy.decide(Request("s3:GetObject", "arn:aws:s3:::b/public/x")).allowed
    decision = policy.decide(Request("s3:GetObject", "arn:aws:s3:::b/private/x"))
    assert not decision.allowed and decision.statement is outside_secret


def test_statement_rejects_malformed_shapes() -> None:
    with pytest.raises(ValueError, match="Effect"):
        Statement("allow", ("s3:*",), ("*",))
    with pytest.raises(ValueError, match="Action and NotAction"):
        Statement("Allow", ("s3:*",), ("*",), not_actions=("iam:*",))
    with pytest.raises(ValueError, match="Resource and NotResource"):
        Statement("Allow", ("s3:*",), ())
    with pytest.raises(TypeError, match="tuple of strings"):
        Statement("Allow", "s3:GetObject", ("*",))  # type: ignore[arg-type]
    # Lists are accepted and stored as tuples, so statements stay hashable.
    listed = Statement("Allow", ["s3:GetObject"], ["*"])  # type: ignore[arg-type]
    assert listed.actions == ("s3:GetObject",) and hash(listed) == hash(
        Statement("Allow", ("s3:GetObject",), ("*",))
    )


def test_decision_messages() -> None:
    request = Request("dynamodb:Query", TABLE + "/index/due")
    assert Decision(False, request, None).message(ROLE) == (
        f"User: {ROLE} is not authorized to perform: dynamodb:Query on resource: {TABLE}/index/due"
        " because no identity-based policy allows the dynamodb:Query action"
    )
    deny = Statement("Deny", ("dynamodb:*",), ("*",))
    assert Decision(False, request, deny).message(ROLE) == (
        f"User: {ROLE} is not authorized to perform: dynamodb:Query on resource: {TABLE}/index/due"
        " with an explicit deny in an identity-based policy"
    )
    grant = allow("dynamodb:Query", "*", sid="DueIndex", source="inline")
    assert "is authorized" in Decision(True, request, grant).message(ROLE)


# ---------------------------------------------------------------- documents


def test_from_document_accepts_strings_or_lists() -> None:
    policy = Policy.from_document(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "A", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:r:1:q"},
                {"Effect": "Deny", "NotAction": ["s3:GetObject", "s3:ListBucket"], "NotResource": "*"},
            ],
        }
    )
    first, second = policy.statements
    assert first == Statement("Allow", ("sqs:SendMessage",), ("arn:aws:sqs:r:1:q",), sid="A", source="inline")
    assert second.not_actions == ("s3:GetObject", "s3:ListBucket") and second.not_resources == ("*",)
    # A bare list of statements, a single-object Statement, and a custom source.
    bare = statements_from_document([{"Effect": "Allow", "Action": "*", "Resource": "*"}], source="x")
    single = statements_from_document({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}, "x")
    assert bare == single == [Statement("Allow", ("*",), ("*",), source="x")]


def test_condition_is_refused() -> None:
    document = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}},
            }
        ]
    }
    with pytest.raises(ValueError, match="Condition is not supported by the local IAM check"):
        Policy.from_document(document)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::GetAtt": ["B", "Arn"]}},
            "not a string",
        ),
        ({"Effect": "Allow", "Action": ["s3:GetObject", {"Ref": "X"}], "Resource": "*"}, r"Action\[1\]"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "${Bucket.Arn}/*"}, "unresolved Fn::Sub"),
        ({"Effect": "Allow", "Action": [], "Resource": "*"}, "non-empty"),
        ({"Effect": "Permit", "Action": "*", "Resource": "*"}, "Effect"),
        ({"Effect": "Allow", "Resource": "*"}, "Action and NotAction"),
        ({"Effect": "Allow", "Action": "*", "Resource": "*", "NotResource": "x"}, "Resource and NotResource"),
        ({"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}, "Principal"),
    ],
)
def test_from_document_rejects_what_it_cannot_check(statement: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        statements_from_document([statement])


# ---------------------------------------------------------------- requests_for: DynamoDB


def test_dynamodb_item_and_table_operations() -> None:
    for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable", "ConditionCheckItem"):
        assert req("dynamodb", op, TableName="jobs", Key={}) == [Request(f"dynamodb:{op}", TABLE)]
    for op in ("CreateTable", "DeleteTable", "UpdateTimeToLive", "DescribeTimeToLive"):
        assert one("dynamodb", op, TableName="jobs") == Request(f"dynamodb:{op}", TABLE)
    # A table ARN as TableName is used as it is.
    assert one("dynamodb", "GetItem", TableName=TABLE) == Request("dynamodb:GetItem", TABLE)
    with pytest.raises(ValueError, match="TableName"):
        req("dynamodb", "GetItem", Key={})


def test_dynamodb_query_and_scan_target_the_index() -> None:
    assert one("dynamodb", "Query", TableName="jobs") == Request("dynamodb:Query", TABLE)
    assert one("dynamodb", "Query", TableName="jobs", IndexName="due") == Request(
        "dynamodb:Query", f"{TABLE}/index/due"
    )
    assert one("dynamodb", "Scan", TableName="jobs", IndexName="due") == Request(
        "dynamodb:Scan", f"{TABLE}/index/due"
    )


def test_table_grant_without_index_arn_denies_query_on_index() -> None:
    """The classic template mistake: `!GetAtt Table.Arn` alone does not cover its indexes."""
    table_only = Policy([allow("dynamodb:Query", TABLE, sid="JobsTable", source="inline")])
    assert table_only.decide(one("dynamodb", "Query", TableName="jobs")).allowed
    decision = table_only.decide(one("dynamodb", "Query", TableName="jobs", IndexName="due"))
    assert not decision.allowed
    assert decision.message(ROLE).endswith(
        f"on resource: {TABLE}/index/due because no identity-based policy allows the dynamodb:Query action"
    )
    with_index = Policy([allow("dynamodb:Query", (TABLE, f"{TABLE}/index/*"))])
    assert with_index.decide(one("dynamodb", "Query", TableName="jobs", IndexName="due")).allowed


def test_dynamodb_batch_operations_cover_every_table() -> None:
    other = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/idem"
    assert req("dynamodb", "BatchGetItem", RequestItems={"jobs": {"Keys": []}, "idem": {"Keys": []}}) == [
        Request("dynamodb:BatchGetItem", TABLE),
        Request("dynamodb:BatchGetItem", other),
    ]
    assert req("dynamodb", "BatchWriteItem", RequestItems={"jobs": [], "idem": []}) == [
        Request("dynamodb:BatchWriteItem", TABLE),
        Request("dynamodb:BatchWriteItem", other),
    ]
    # Only one table granted: the other one is denied.
    policy = Policy([allow("dynamodb:BatchGetItem", TABLE)])
    decisions = policy.decide_all(req("dynamodb", "BatchGetItem", RequestItems={"jobs": {}, "idem": {}}))
    assert [d.allowed for d in decisions] == [True, False]


def test_dynamodb_transactions_map_each_item_to_its_action() -> None:
    other = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/idem"
    items = [
        {"Put": {"TableName": "jobs", "Item": {}}},
        {"Update": {"TableName": "jobs", "Key": {}, "UpdateExpression": "SET a = :a"}},
        {"Delete": {"TableName": "idem", "Key": {}}},
        {"ConditionCheck": {"TableName": "idem", "Key": {}, "ConditionExpression": "attribute_exists(pk)"}},
        {"Put": {"TableName": "jobs", "Item": {}}},  # duplicate: asked for once
    ]
    assert req("dynamodb", "TransactWriteItems", TransactItems=items) == [
        Request("dynamodb:PutItem", TABLE),
        Request("dynamodb:UpdateItem", TABLE),
        Request("dynamodb:DeleteItem", other),
        Request("dynamodb:ConditionCheckItem", other),
    ]
    gets = [{"Get": {"TableName": "jobs", "Key": {}}}, {"Get": {"TableName": "idem", "Key": {}}}]
    assert req("dynamodb", "TransactGetItems", TransactItems=gets) == [
        Request("dynamodb:GetItem", TABLE),
        Request("dynamodb:GetItem", other),
    ]


# ---------------------------------------------------------------- requests_for: S3


def test_s3_reads_and_writes_use_the_object_arn() -> None:
    obj = "arn:aws:s3:::media/inputs/a b.mp4"
    for op in ("GetObject", "HeadObject"):
        assert one("s3", op, Bucket="media", Key="inputs/a b.mp4") == Request("s3:GetObject", obj)
    assert one("s3", "GetObject", Bucket="media", Key="inputs/a b.mp4", VersionId="v1") == Request(
        "s3:GetObject", obj
    )
    for op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        assert one("s3", op, Bucket="media", Key="inputs/a b.mp4", UploadId="u") == Request(
            "s3:PutObject", obj
        )
    assert one("s3", "AbortMultipartUpload", Bucket="media", Key="inputs/a b.mp4", UploadId="u") == Request(
        "s3:AbortMultipartUpload", obj
    )
    assert one("s3", "ListParts", Bucket="media", Key="inputs/a b.mp4", UploadId="u") == Request(
        "s3:ListMultipartUploadParts", obj
    )
    assert one("s3", "DeleteObject", Bucket="media", Key="inputs/a b.mp4") == Request("s3:DeleteObject", obj)
    assert one("s3", "GetObjectTagging", Bucket="media", Key="k") == Request(
        "s3:GetObjectTagging", "arn:aws:s3:::media/k"
    )
    assert one("s3", "PutObjectTagging", Bucket="media", Key="k", Tagging={}) == Request(
        "s3:PutObjectTagging", "arn:aws:s3:::media/k"
    )


def test_s3_bucket_operations_use_the_bucket_arn() -> None:
    expected = {
        "HeadBucket": "s3:ListBucket",
        "ListObjects": "s3:ListBucket",
        "ListObjectsV2": "s3:ListBucket",
        "ListMultipartUploads": "s3:ListBucketMultipartUploads",
        "GetBucketLocation": "s3:GetBucketLocation",
        "CreateBucket": "s3:CreateBucket",
        "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    }
    for op, action in expected.items():
        assert one("s3", op, Bucket="media") == Request(action, "arn:aws:s3:::media")


def test_s3_delete_objects_asks_for_each_key() -> None:
    delete = {"Objects": [{"Key": "inputs/a"}, {"Key": "inputs/b", "VersionId": "v"}, {"Key": "inputs/a"}]}
    assert req("s3", "DeleteObjects", Bucket="media", Delete=delete) == [
        Request("s3:DeleteObject", "arn:aws:s3:::media/inputs/a"),
        Request("s3:DeleteObject", "arn:aws:s3:::media/inputs/b"),
    ]


@pytest.mark.parametrize(
    "copy_source",
    [
        "src/inputs/a b.mp4",
        "/src/inputs/a b.mp4",
        "src/inputs/a%20b.mp4",
        "/src/inputs/a%20b.mp4?versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        {"Bucket": "src", "Key": "inputs/a b.mp4"},
        {"Bucket": "src", "Key": "inputs/a b.mp4", "VersionId": "v1"},
    ],
)
def test_s3_copy_needs_put_on_destination_and_get_on_source(copy_source: str | dict) -> None:
    expected = [
        Request("s3:PutObject", "arn:aws:s3:::dst/outputs/x.mp4"),
        Request("s3:GetObject", "arn:aws:s3:::src/inputs/a b.mp4"),
    ]
    for op in ("CopyObject", "UploadPartCopy"):
        assert req("s3", op, Bucket="dst", Key="outputs/x.mp4", CopySource=copy_source) == expected


def test_s3_copy_source_without_key_is_refused() -> None:
    with pytest.raises(ValueError, match="CopySource"):
        req("s3", "CopyObject", Bucket="dst", Key="k", CopySource="just-a-bucket")


def test_bucket_prefix_grant_denies_other_prefixes() -> None:
    policy = Policy([allow(("s3:GetObject", "s3:PutObject"), "arn:aws:s3:::b/inputs/*", source="inline")])
    assert policy.decide(one("s3", "HeadObject", Bucket="b", Key="inputs/x")).allowed
    assert policy.decide(one("s3", "UploadPart", Bucket="b", Key="inputs/deep/x", UploadId="u")).allowed
    assert not policy.decide(one("s3", "GetObject", Bucket="b", Key="outputs/x")).allowed
    # The object grant does not cover the bucket itself (HEAD of a bucket / listing).
    assert not policy.decide(one("s3", "ListObjectsV2", Bucket="b", Prefix="inputs/")).allowed
    # A copy from inputs/ to outputs/ fails on the destination.
    copy = policy.decide_all(req("s3", "CopyObject", Bucket="b", Key="outputs/x", CopySource="b/inputs/x"))
    assert [(d.request.action, d.allowed) for d in copy] == [("s3:PutObject", False), ("s3:GetObject", True)]


# ---------------------------------------------------------------- requests_for: SQS


MOTO_URL = f"http://127.0.0.1:5000/{ACCOUNT_ID}/q-name"
AWS_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/q"


@pytest.mark.parametrize(
    ("url", "arn"),
    [
        (MOTO_URL, f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:q-name"),
        (AWS_URL, f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:q"),
        (
            "https://sqs.us-east-1.amazonaws.com/210987654321/other.fifo",
            f"arn:aws:sqs:{REGION}:210987654321:other.fifo",
        ),
        ("http://localhost:4566/queue/q", f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:q"),  # no account in the path
    ],
)
def test_sqs_queue_url_to_arn(url: str, arn: str) -> None:
    assert one("sqs", "SendMessage", QueueUrl=url, MessageBody="{}") == Request("sqs:SendMessage", arn)


def test_sqs_operations() -> None:
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:q-name"
    expected = {
        "SendMessage": "sqs:SendMessage",
        "SendMessageBatch": "sqs:SendMessage",
        "ReceiveMessage": "sqs:ReceiveMessage",
        "DeleteMessage": "sqs:DeleteMessage",
        "DeleteMessageBatch": "sqs:DeleteMessage",
        "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
        "GetQueueAttributes": "sqs:GetQueueAttributes",
        "SetQueueAttributes": "sqs:SetQueueAttributes",
        "PurgeQueue": "sqs:PurgeQueue",
    }
    for op, action in expected.items():
        assert one("sqs", op, QueueUrl=MOTO_URL) == Request(action, arn)
    assert one("sqs", "GetQueueUrl", QueueName="q-name") == Request("sqs:GetQueueUrl", arn)
    assert one("sqs", "GetQueueUrl", QueueName="q", QueueOwnerAWSAccountId="210987654321") == Request(
        "sqs:GetQueueUrl", f"arn:aws:sqs:{REGION}:210987654321:q"
    )
    assert one("sqs", "CreateQueue", QueueName="q-name") == Request("sqs:CreateQueue", arn)


def test_sam_sqs_send_policy_covers_batches_and_poller_covers_visibility() -> None:
    queue = "q-name"
    send = Policy(sam_policy_template("SQSSendMessagePolicy", {"QueueName": queue}, region=REGION))
    assert send.decide(one("sqs", "SendMessageBatch", QueueUrl=MOTO_URL, Entries=[])).allowed
    assert not send.decide(one("sqs", "ReceiveMessage", QueueUrl=MOTO_URL)).allowed
    poller = Policy(sam_policy_template("SQSPollerPolicy", {"QueueName": queue}, region=REGION))
    assert poller.decide(one("sqs", "ChangeMessageVisibilityBatch", QueueUrl=MOTO_URL, Entries=[])).allowed
    assert not poller.decide(one("sqs", "SendMessage", QueueUrl=MOTO_URL)).allowed


# ---------------------------------------------------------------- requests_for: Secrets Manager, STS, other


def test_secrets_name_goes_through_the_callback_and_arns_pass_through() -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:motionrelay/providers-AbCdEf"
    seen: list[str] = []

    def resolve(secret_id: str) -> str:
        seen.append(secret_id)
        return arn

    for op in ("GetSecretValue", "DescribeSecret", "PutSecretValue"):
        requests = requests_for(
            "secretsmanager", op, {"SecretId": "motionrelay/providers"}, region=REGION, secret_arn=resolve
        )
        assert requests == [Request(f"secretsmanager:{op}", arn)]
    assert seen == ["motionrelay/providers"] * 3
    other = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:other-123456"
    assert requests_for(
        "secretsmanager", "GetSecretValue", {"SecretId": other}, region=REGION, secret_arn=resolve
    ) == [Request("secretsmanager:GetSecretValue", other)]
    assert seen == ["motionrelay/providers"] * 3  # an ARN is not resolved
    # The SAM template grants exactly that secret.
    policy = Policy(
        sam_policy_template("AWSSecretsManagerGetSecretValuePolicy", {"SecretArn": arn}, region=REGION)
    )
    assert policy.decide(Request("secretsmanager:GetSecretValue", arn)).allowed
    assert not policy.decide(Request("secretsmanager:GetSecretValue", other)).allowed


def test_sts_get_caller_identity_needs_nothing() -> None:
    assert req("sts", "GetCallerIdentity") == []


@pytest.mark.parametrize(
    ("service", "operation", "action"),
    [
        ("xray", "PutTraceSegments", "xray:PutTraceSegments"),
        ("logs", "PutLogEvents", "logs:PutLogEvents"),
        ("cloudwatch", "PutMetricData", "cloudwatch:PutMetricData"),
        ("events", "PutEvents", "events:PutEvents"),
        ("stepfunctions", "StartExecution", "states:StartExecution"),
        ("s3", "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus"),
        ("dynamodb", "ListTables", "dynamodb:ListTables"),
        ("sqs", "ListQueues", "sqs:ListQueues"),
    ],
)
def test_unknown_operations_fall_back_to_service_action_on_star(
    service: str, operation: str, action: str
) -> None:
    assert req(service, operation) == [Request(action, "*")]


def test_fallback_request_needs_a_star_grant() -> None:
    request = one("cloudwatch", "PutMetricData", Namespace="MotionRelay")
    assert Policy(managed_policy("AWSXrayWriteOnlyAccess")).decide(request).allowed is False
    assert Policy([allow("cloudwatch:PutMetricData", "*")]).decide(request).allowed


# ---------------------------------------------------------------- SAM managed policies and templates


def test_managed_policies() -> None:
    basic = Policy(managed_policy("AWSLambdaBasicExecutionRole"))
    assert all(s.source == "AWSLambdaBasicExecutionRole" for s in basic.statements)
    assert basic.decide(Request("logs:PutLogEvents", "arn:aws:logs:r:1:log-group:g:log-stream:s")).allowed
    assert not basic.decide(Request("logs:DeleteLogGroup", "*")).allowed
    xray = Policy(managed_policy("AWSXrayWriteOnlyAccess"))
    for action in (
        "PutTraceSegments",
        "PutTelemetryRecords",
        "GetSamplingRules",
        "GetSamplingTargets",
        "GetSamplingStatisticSummaries",
    ):
        assert xray.decide(one("xray", action)).allowed
    sqs = Policy(managed_policy("AWSLambdaSQSQueueExecutionRole"))
    for op in ("ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "GetQueueAttributes"):
        assert sqs.decide(one("sqs", op, QueueUrl=AWS_URL)).allowed
    assert not sqs.decide(one("sqs", "ChangeMessageVisibility", QueueUrl=AWS_URL)).allowed
    assert sqs.decide(Request("logs:CreateLogStream", "*")).allowed
    with pytest.raises(KeyError):
        managed_policy("AdministratorAccess")


def test_sam_dynamodb_templates() -> None:
    crud = sam_policy_template("DynamoDBCrudPolicy", {"TableName": "jobs"}, region=REGION)
    (statement,) = crud
    assert statement.source == "SAM policy template DynamoDBCrudPolicy"
    assert statement.resources == (TABLE, f"{TABLE}/index/*")
    policy = Policy(crud)
    assert policy.decide(one("dynamodb", "Query", TableName="jobs", IndexName="due")).allowed
    assert policy.decide_all(
        req(
            "dynamodb",
            "TransactWriteItems",
            TransactItems=[{"Put": {"TableName": "jobs"}}, {"ConditionCheck": {"TableName": "jobs"}}],
        )
    )[1].allowed
    assert not policy.decide(one("dynamodb", "DeleteTable", TableName="jobs")).allowed
    assert not policy.decide(one("dynamodb", "GetItem", TableName="other")).allowed

    read = Policy(sam_policy_template("DynamoDBReadPolicy", {"TableName": "jobs"}, region=REGION))
    assert read.decide(one("dynamodb", "BatchGetItem", RequestItems={"jobs": {}})).allowed
    assert not read.decide(one("dynamodb", "PutItem", TableName="jobs")).allowed
    write = Policy(sam_policy_template("DynamoDBWritePolicy", {"TableName": "jobs"}, region=REGION))
    assert write.decide(one("dynamodb", "UpdateItem", TableName="jobs")).allowed
    assert not write.decide(one("dynamodb", "DeleteItem", TableName="jobs")).allowed  # not in the template
    assert not write.decide(one("dynamodb", "GetItem", TableName="jobs")).allowed


def test_sam_s3_templates() -> None:
    (read,) = sam_policy_template("S3ReadPolicy", {"BucketName": "media"}, region=REGION, partition="aws-cn")
    assert read.resources == ("arn:aws-cn:s3:::media", "arn:aws-cn:s3:::media/*")
    crud = Policy(sam_policy_template("S3CrudPolicy", {"BucketName": "media"}, region=REGION))
    for op in ("HeadObject", "PutObject", "DeleteObject", "CompleteMultipartUpload"):
        assert crud.decide(one("s3", op, Bucket="media", Key="k")).allowed
    assert crud.decide(one("s3", "HeadBucket", Bucket="media")).allowed
    assert not crud.decide(one("s3", "AbortMultipartUpload", Bucket="media", Key="k")).allowed
    write = Policy(sam_policy_template("S3WritePolicy", {"BucketName": "media"}, region=REGION))
    assert write.decide(one("s3", "UploadPart", Bucket="media", Key="k")).allowed
    assert not write.decide(one("s3", "GetObject", Bucket="media", Key="k")).allowed


def test_sam_template_parameters() -> None:
    (statement,) = sam_policy_template(
        "SQSPollerPolicy", {"QueueName": "q"}, region="eu-west-1", account="210987654321"
    )
    assert statement.resources == ("arn:aws:sqs:eu-west-1:210987654321:q",)
    with pytest.raises(ValueError, match="TableName"):
        sam_policy_template("DynamoDBCrudPolicy", {}, region=REGION)
    with pytest.raises(ValueError, match="resolved string"):
        sam_policy_template("DynamoDBCrudPolicy", {"TableName": {"Ref": "T"}}, region=REGION)  # type: ignore[dict-item]
    with pytest.raises(KeyError):
        sam_policy_template("LambdaInvokePolicy", {"FunctionName": "f"}, region=REGION)


# ---------------------------------------------------------------- least privilege


def test_unused_grants_reports_unused_pairs_of_inline_statements_only() -> None:
    jobs = allow(
        ("dynamodb:GetItem", "dynamodb:PutItem"), (TABLE, f"{TABLE}/index/*"), sid="Jobs", source="inline"
    )
    queue = allow("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:q", sid="Queue", source="inline")
    deny = Statement("Deny", ("s3:*",), ("*",), source="inline")
    policy = Policy([jobs, queue, deny, *managed_policy("AWSLambdaBasicExecutionRole")])
    decisions = policy.decide_all(
        [
            one("dynamodb", "GetItem", TableName="jobs"),
            one("dynamodb", "PutItem", TableName="other"),  # denied: does not count as use
            one("s3", "GetObject", Bucket="b", Key="k"),
        ]
    )
    assert [d.allowed for d in decisions] == [True, False, False]
    report = unused_grants(policy, decisions)
    assert [(s.sid, a, r) for s, a, r in report] == [
        ("Jobs", "dynamodb:GetItem", f"{TABLE}/index/*"),
        ("Jobs", "dynamodb:PutItem", TABLE),
        ("Jobs", "dynamodb:PutItem", f"{TABLE}/index/*"),
        ("Queue", "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:q"),
    ]
    # The used pair is not reported; neither are the managed policy nor the Deny.
    assert ("Jobs", "dynamodb:GetItem", TABLE) not in [(s.sid, a, r) for s, a, r in report]
    assert all(s.source == "inline" and s.effect == "Allow" for s, _, _ in report)


def test_unused_grants_counts_a_match_credited_to_another_statement() -> None:
    """SAM's SQS event role grants ReceiveMessage on *; the inline grant is still in use."""
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:q"
    inline = allow("sqs:ReceiveMessage", queue_arn, source="inline")
    policy = Policy([*managed_policy("AWSLambdaSQSQueueExecutionRole"), inline])
    decision = policy.decide(one("sqs", "ReceiveMessage", QueueUrl=AWS_URL))
    assert decision.allowed and decision.statement is not inline
    assert unused_grants(policy, [decision]) == []
    assert unused_grants(policy, []) == [(inline, "sqs:ReceiveMessage", queue_arn)]


def test_unused_grants_wildcard_action_used_by_any_match() -> None:
    grant = allow("dynamodb:*Item", TABLE, source="inline")
    policy = Policy([grant])
    assert unused_grants(policy, [policy.decide(one("dynamodb", "UpdateItem", TableName="jobs"))]) == []
