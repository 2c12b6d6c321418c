"""IAM policy evaluation for the local stack, without I/O.

moto does not check IAM, so without this a function that lacks a permission in
template.yaml works locally and fails with AccessDenied in AWS. The local stack hands every
AWS SDK call a function makes to `requests_for` (which IAM action on which resource ARN the
call needs, per the AWS Service Authorization Reference) and asks the function's `Policy`
(its template statements plus SAM's implicit and managed policies) for a `Decision`.

What is modelled, the way IAM does it for identity-based policies of one principal:
- `Action`/`NotAction`, `Resource`/`NotResource`, with `*` and `?` wildcards; actions are
  case-insensitive, resources case-sensitive, and `*` in a resource also crosses `/` and `:`;
- an explicit Deny wins over any Allow; no matching Allow is an implicit deny.

What is not: `Condition` (refused, so nobody believes it is checked), policy variables,
resource-based policies, permission boundaries and SCPs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from motionrelay_local.apigw import ACCOUNT_ID

__all__ = [
    "ACCOUNT_ID",
    "Decision",
    "Policy",
    "Request",
    "Statement",
    "managed_policy",
    "requests_for",
    "sam_policy_template",
    "statements_from_document",
    "unused_grants",
]

_EFFECTS = ("Allow", "Deny")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"})
_ACCOUNT_RE = re.compile(r"\d{12}")


# ---------------------------------------------------------------- matching


@lru_cache(maxsize=4096)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM wildcards as a regex: `*` any run of characters (`/` and `:` included), `?` one."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def action_matches(pattern: str, action: str) -> bool:
    """Action names are case-insensitive in IAM (`DynamoDB:getitem` grants `dynamodb:GetItem`)."""
    return _pattern(pattern, True).fullmatch(action) is not None


def resource_matches(pattern: str, resource: str) -> bool:
    """ARNs are case-sensitive: `arn:aws:s3:::b/Inputs/*` does not grant `b/inputs/x`."""
    return _pattern(pattern, False).fullmatch(resource) is not None


# ---------------------------------------------------------------- policy model


@dataclass(frozen=True)
class Statement:
    """One identity-policy statement. Exactly one of actions/not_actions and one of
    resources/not_resources is non-empty, as IAM requires."""

    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    sid: str = ""
    not_actions: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        if self.effect not in _EFFECTS:
            raise ValueError(
                f"statement {self.sid or '?'}: Effect must be Allow or Deny, not {self.effect!r}"
            )
        for name in ("actions", "resources", "not_actions", "not_resources"):
            value = getattr(self, name)
            # A bare string would silently be iterated character by character.
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"statement {self.sid or '?'}: {name} must be a tuple of strings")
            object.__setattr__(self, name, tuple(value))  # a list would make the statement unhashable
        if bool(self.actions) == bool(self.not_actions):
            raise ValueError(f"statement {self.sid or '?'}: needs exactly one of Action and NotAction")
        if bool(self.resources) == bool(self.not_resources):
            raise ValueError(f"statement {self.sid or '?'}: needs exactly one of Resource and NotResource")

    def applies_to(self, request: Request) -> bool:
        """Whether the statement covers the request (NotX: everything not matching X)."""
        if self.actions:
            action_ok = any(action_matches(p, request.action) for p in self.actions)
        else:
            action_ok = not any(action_matches(p, request.action) for p in self.not_actions)
        if not action_ok:
            return False
        if self.resources:
            return any(resource_matches(p, request.resource) for p in self.resources)
        return not any(resource_matches(p, request.resource) for p in self.not_resources)

    def describe(self) -> str:
        """Short human label for reports: source and Sid."""
        return f"{self.source or 'policy'} statement {self.sid}" if self.sid else (self.source or "policy")


@dataclass(frozen=True)
class Request:
    """One IAM authorization check: an action (`dynamodb:Query`) on one resource ARN."""

    action: str
    resource: str


@dataclass(frozen=True)
class Decision:
    """The outcome of one Request; `statement` is the deciding Allow or Deny, None for an
    implicit deny."""

    allowed: bool
    request: Request
    statement: Statement | None

    @property
    def explicit_deny(self) -> bool:
        return not self.allowed and self.statement is not None

    def message(self, principal_arn: str) -> str:
        """The text AWS puts in an AccessDenied error, so local failures read like real ones."""
        action, resource = self.request.action, self.request.resource
        head = f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource}"
        if self.allowed:
            by = self.statement.describe() if self.statement is not None else "policy"
            return f"User: {principal_arn} is authorized to perform: {action} on resource: {resource} by {by}"
        if self.statement is not None:
            return f"{head} with an explicit deny in an identity-based policy"
        return f"{head} because no identity-based policy allows the {action} action"


class Policy:
    """All the identity-based statements of one principal, evaluated together."""

    def __init__(self, statements: Iterable[Statement]) -> None:
        self.statements: tuple[Statement, ...] = tuple(statements)

    def __repr__(self) -> str:
        return f"Policy({len(self.statements)} statements)"

    def decide(self, request: Request) -> Decision:
        """IAM evaluation order: any applicable Deny denies; else any applicable Allow allows;
        else implicit deny. The first applicable statement of the winning kind is reported."""
        allow: Statement | None = None
        for statement in self.statements:
            if not statement.applies_to(request):
                continue
            if statement.effect == "Deny":
                return Decision(False, request, statement)
            if allow is None:
                allow = statement
        return Decision(allow is not None, request, allow)

    def decide_all(self, requests: Iterable[Request]) -> list[Decision]:
        return [self.decide(r) for r in requests]

    @classmethod
    def from_document(cls, document: dict[str, Any] | list[Any], source: str = "inline") -> Policy:
        return cls(statements_from_document(document, source))


# ---------------------------------------------------------------- policy documents


def _strings(value: Any, where: str) -> tuple[str, ...]:
    """A str-or-list policy field as a tuple of strings; anything unresolved is an error."""
    single = isinstance(value, str | dict)  # a dict here is an unresolved intrinsic
    items = [value] if single else value
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where} must be a non-empty string or list of strings, got {value!r}")
    for i, item in enumerate(items):
        label = where if single else f"{where}[{i}]"
        if not isinstance(item, str):
            raise ValueError(
                f"{label} is {item!r}, not a string: resolve intrinsic functions "
                "(Ref, Fn::GetAtt, Fn::Sub, ...) before building the policy"
            )
        if "${" in item:
            # An unresolved Fn::Sub leftover, or an IAM policy variable: neither can be matched.
            raise ValueError(
                f"{label} {item!r} contains '${{': unresolved Fn::Sub or IAM policy variable, "
                "not supported by the local IAM check"
            )
    return tuple(items)


def statements_from_document(document: dict[str, Any] | list[Any], source: str = "inline") -> list[Statement]:
    """Statements of a policy document (`{"Version", "Statement"}`), a bare statement list, or
    a single statement object. Values must already be plain strings."""
    raw: Any = document
    if isinstance(document, dict) and "Statement" in document:
        raw = document["Statement"]
    if isinstance(raw, dict):
        raw = [raw]  # "Statement" may be a single object, and so may the whole document
    if not isinstance(raw, list):
        raise ValueError(
            f"{source} policy: expected a policy document or a list of statements, got {document!r}"
        )
    statements = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"{source} policy: Statement[{index}] is not an object: {item!r}")
        sid = item.get("Sid", "")
        where = f"{source} policy Statement[{index}]" + (f" ({sid})" if sid else "")
        if not isinstance(sid, str):
            raise ValueError(f"{where}: Sid must be a string")
        if "Condition" in item:
            raise ValueError(f"{where}: Condition is not supported by the local IAM check")
        unknown = sorted(set(item) - _STATEMENT_KEYS)
        if unknown:
            # Principal/NotPrincipal belong to resource-based policies, not a function's role.
            raise ValueError(f"{where}: unsupported key(s) {', '.join(unknown)}")
        effect = item.get("Effect")
        if effect not in _EFFECTS:
            raise ValueError(f"{where}: Effect must be 'Allow' or 'Deny', got {effect!r}")
        for positive, negative in (("Action", "NotAction"), ("Resource", "NotResource")):
            if (positive in item) == (negative in item):
                raise ValueError(f"{where}: needs exactly one of {positive} and {negative}")

        def field(key: str, where: str = where, item: dict[str, Any] = item) -> tuple[str, ...]:
            return _strings(item[key], f"{where}.{key}") if key in item else ()

        statements.append(
            Statement(
                effect=effect,
                actions=field("Action"),
                resources=field("Resource"),
                sid=sid,
                not_actions=field("NotAction"),
                not_resources=field("NotResource"),
                source=source,
            )
        )
    return statements


# ---------------------------------------------------------------- SAM's own policies

_LOGS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")

# AWS managed policies SAM attaches: AWSLambdaBasicExecutionRole to every function,
# AWSXrayWriteOnlyAccess for `Tracing: Active`, AWSLambdaSQSQueueExecutionRole for an SQS event.
_MANAGED: dict[str, tuple[tuple[str, ...], ...]] = {
    "AWSLambdaBasicExecutionRole": (_LOGS,),
    "AWSXrayWriteOnlyAccess": (
        (
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
        ),
    ),
    "AWSLambdaSQSQueueExecutionRole": (
        ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
        _LOGS,
    ),
}


def managed_policy(name: str) -> list[Statement]:
    """The statements of an AWS managed policy SAM attaches (all on `*`); KeyError if unknown."""
    if name not in _MANAGED:
        raise KeyError(f"managed policy {name!r} is not modelled by the local IAM check")
    return [Statement("Allow", actions, ("*",), source=name) for actions in _MANAGED[name]]


# Copied from SAM's samtranslator/policy_templates_data/policy_templates.json
# (aws/serverless-application-model). Resources are Fn::Sub strings over the template
# parameter and the pseudo parameters.
_TABLE = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}"
_BUCKET = "arn:${AWS::Partition}:s3:::${BucketName}"
_QUEUE = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${QueueName}"
_SAM_TEMPLATES: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = {
    "DynamoDBCrudPolicy": (
        (
            (
                "dynamodb:GetItem",
                "dynamodb:DeleteItem",
                "dynamodb:PutItem",
                "dynamodb:Scan",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:BatchGetItem",
                "dynamodb:DescribeTable",
                "dynamodb:ConditionCheckItem",
            ),
            (_TABLE, _TABLE + "/index/*"),
        ),
    ),
    "DynamoDBReadPolicy": (
        (
            (
                "dynamodb:GetItem",
                "dynamodb:Scan",
                "dynamodb:Query",
                "dynamodb:BatchGetItem",
                "dynamodb:DescribeTable",
            ),
            (_TABLE, _TABLE + "/index/*"),
        ),
    ),
    "DynamoDBWritePolicy": (
        (
            ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"),
            (_TABLE, _TABLE + "/index/*"),
        ),
    ),
    "S3ReadPolicy": (
        (
            (
                "s3:GetObject",
                "s3:ListBucket",
                "s3:GetBucketLocation",
                "s3:GetObjectVersion",
                "s3:GetLifecycleConfiguration",
            ),
            (_BUCKET, _BUCKET + "/*"),
        ),
    ),
    "S3WritePolicy": (
        (
            ("s3:PutObject", "s3:PutObjectAcl", "s3:PutLifecycleConfiguration"),
            (_BUCKET, _BUCKET + "/*"),
        ),
    ),
    "S3CrudPolicy": (
        (
            (
                "s3:GetObject",
                "s3:ListBucket",
                "s3:GetBucketLocation",
                "s3:GetObjectVersion",
                "s3:PutObject",
                "s3:PutObjectAcl",
                "s3:GetLifecycleConfiguration",
                "s3:PutLifecycleConfiguration",
                "s3:DeleteObject",
            ),
            (_BUCKET, _BUCKET + "/*"),
        ),
    ),
    "SQSSendMessagePolicy": ((("sqs:SendMessage*",), (_QUEUE,)),),
    "SQSPollerPolicy": (
        (
            (
                "sqs:ChangeMessageVisibility",
                "sqs:ChangeMessageVisibilityBatch",
                "sqs:DeleteMessage",
                "sqs:DeleteMessageBatch",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ),
            (_QUEUE,),
        ),
    ),
    "AWSSecretsManagerGetSecretValuePolicy": ((("secretsmanager:GetSecretValue",), ("${SecretArn}",)),),
}
_TEMPLATE_PARAMS = {
    "DynamoDBCrudPolicy": "TableName",
    "DynamoDBReadPolicy": "TableName",
    "DynamoDBWritePolicy": "TableName",
    "S3ReadPolicy": "BucketName",
    "S3WritePolicy": "BucketName",
    "S3CrudPolicy": "BucketName",
    "SQSSendMessagePolicy": "QueueName",
    "SQSPollerPolicy": "QueueName",
    "AWSSecretsManagerGetSecretValuePolicy": "SecretArn",
}
_SUB_RE = re.compile(r"\$\{([^}]+)\}")


def sam_policy_template(
    name: str,
    params: Mapping[str, str],
    *,
    region: str,
    account: str = ACCOUNT_ID,
    partition: str = "aws",
) -> list[Statement]:
    """The statements SAM expands a policy template into; params are already resolved
    (e.g. {"TableName": "motionrelay-jobs"}). KeyError for a template not modelled here."""
    if name not in _SAM_TEMPLATES:
        raise KeyError(f"SAM policy template {name!r} is not modelled by the local IAM check")
    param = _TEMPLATE_PARAMS[name]
    value = params.get(param)
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"SAM policy template {name}: parameter {param} must be a resolved string, got {value!r}"
        )
    values = {"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account, param: value}

    def sub(text: str) -> str:
        return _SUB_RE.sub(lambda m: values[m.group(1)], text)

    return [
        Statement("Allow", actions, tuple(sub(r) for r in resources), source=f"SAM policy template {name}")
        for actions, resources in _SAM_TEMPLATES[name]
    ]


# ---------------------------------------------------------------- API call -> IAM requests

# botocore service names whose IAM prefix differs; any other service uses its own name.
_IAM_PREFIX = {
    "stepfunctions": "states",
    "sesv2": "ses",
    "elbv2": "elasticloadbalancing",
    "elb": "elasticloadbalancing",
    "opensearch": "es",
    "dynamodbstreams": "dynamodb",
    "sagemaker-runtime": "sagemaker",
    "bedrock-runtime": "bedrock",
    "s3control": "s3",
}

_DYNAMODB_TABLE_OPS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "DescribeTable",
        "CreateTable",
        "DeleteTable",
        "UpdateTable",
        "UpdateTimeToLive",
        "DescribeTimeToLive",
        "ConditionCheckItem",
    }
)
_TRANSACT_WRITE_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# S3 operation -> (IAM action, "object" | "bucket" | "none"); S3 action names often differ
# from the API names (HeadObject needs s3:GetObject, multipart uploads need s3:PutObject).
_S3 = {
    "GetObject": ("s3:GetObject", "object"),
    "HeadObject": ("s3:GetObject", "object"),
    "PutObject": ("s3:PutObject", "object"),
    "CreateMultipartUpload": ("s3:PutObject", "object"),
    "UploadPart": ("s3:PutObject", "object"),
    "CompleteMultipartUpload": ("s3:PutObject", "object"),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", "object"),
    "ListParts": ("s3:ListMultipartUploadParts", "object"),
    "DeleteObject": ("s3:DeleteObject", "object"),
    "GetObjectTagging": ("s3:GetObjectTagging", "object"),
    "PutObjectTagging": ("s3:PutObjectTagging", "object"),
    "DeleteObjectTagging": ("s3:DeleteObjectTagging", "object"),
    "GetObjectAcl": ("s3:GetObjectAcl", "object"),
    "PutObjectAcl": ("s3:PutObjectAcl", "object"),
    "HeadBucket": ("s3:ListBucket", "bucket"),
    "ListObjects": ("s3:ListBucket", "bucket"),
    "ListObjectsV2": ("s3:ListBucket", "bucket"),
    "ListObjectVersions": ("s3:ListBucketVersions", "bucket"),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads", "bucket"),
    "GetBucketLocation": ("s3:GetBucketLocation", "bucket"),
    "CreateBucket": ("s3:CreateBucket", "bucket"),
    "DeleteBucket": ("s3:DeleteBucket", "bucket"),
    "PutBucketLifecycleConfiguration": ("s3:PutLifecycleConfiguration", "bucket"),
    "GetBucketLifecycleConfiguration": ("s3:GetLifecycleConfiguration", "bucket"),
    "ListBuckets": ("s3:ListAllMyBuckets", "none"),
}
_SQS_ACTION = {
    "SendMessageBatch": "sqs:SendMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def _param(params: Mapping[str, Any], name: str, call: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise ValueError(f"{call}: parameter {name} is missing, so the IAM resource is unknown")
    return value


def _table_arn(table: str, region: str, account: str) -> str:
    # DynamoDB accepts a table ARN wherever it takes a TableName.
    return table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{table}"


def _bucket_arn(bucket: str) -> str:
    # An access point or Outposts ARN passed as Bucket is its own resource.
    return bucket if bucket.startswith("arn:") else f"arn:aws:s3:::{bucket}"


def _object_arn(bucket: str, key: str) -> str:
    return f"{bucket}/object/{key}" if bucket.startswith("arn:") else f"arn:aws:s3:::{bucket}/{key}"


def _copy_source_arn(source: Any, call: str) -> str:
    """The object ARN of a CopySource: {"Bucket", "Key"[, "VersionId"]}, "bucket/key",
    "/bucket/key", URL-encoded, optionally with "?versionId=...", or an access point ARN."""
    if isinstance(source, Mapping):
        return _object_arn(str(_param(source, "Bucket", call)), str(_param(source, "Key", call)))
    if not isinstance(source, str) or not source:
        raise ValueError(f"{call}: CopySource must be a string or a {{Bucket, Key}} dict, got {source!r}")
    text = re.sub(r"\?versionId=[^\s]+$", "", source)
    text = unquote(text).lstrip("/")
    if text.startswith("arn:"):
        return text
    bucket, sep, key = text.partition("/")
    if not bucket or not sep or not key:
        raise ValueError(f"{call}: CopySource {source!r} is not 'bucket/key'")
    return f"arn:aws:s3:::{bucket}/{key}"


def _queue_arn(url: str, region: str, account: str, call: str) -> str:
    """`http(s)://host[:port]/{account}/{name}` (AWS and moto alike) -> the queue ARN."""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if not segments:
        raise ValueError(f"{call}: QueueUrl {url!r} has no queue name")
    name = segments[-1]
    if len(segments) >= 2 and _ACCOUNT_RE.fullmatch(segments[-2]):
        account = segments[-2]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _secret_arn(secret_id: str, region: str, account: str, secret_arn: Callable[[str], str] | None) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    if secret_arn is not None:
        return secret_arn(secret_id)
    # Without a resolver the random 6-character suffix AWS appends is unknown: grants written
    # as `secret:name-??????` will not match this, which is the safe direction to be wrong in.
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"


def _dynamodb(op: str, params: Mapping[str, Any], region: str, account: str, call: str) -> list[Request]:
    def table(name: str) -> str:
        return _table_arn(name, region, account)

    if op in ("Query", "Scan"):
        arn = table(_param(params, "TableName", call))
        index = params.get("IndexName")
        return [Request(f"dynamodb:{op}", f"{arn}/index/{index}" if index else arn)]
    if op in ("BatchGetItem", "BatchWriteItem"):
        items = _param(params, "RequestItems", call)
        return [Request(f"dynamodb:{op}", table(name)) for name in items]
    if op == "TransactWriteItems":
        out = []
        for entry in _param(params, "TransactItems", call):
            for kind, body in entry.items():
                if kind not in _TRANSACT_WRITE_ACTIONS:
                    raise ValueError(f"{call}: unknown TransactItems entry {kind!r}")
                out.append(Request(_TRANSACT_WRITE_ACTIONS[kind], table(_param(body, "TableName", call))))
        return out
    if op == "TransactGetItems":
        return [
            Request("dynamodb:GetItem", table(_param(body, "TableName", call)))
            for entry in _param(params, "TransactItems", call)
            for body in entry.values()
        ]
    if op in _DYNAMODB_TABLE_OPS or "TableName" in params:
        # DynamoDB's IAM actions are named after the API operations.
        return [Request(f"dynamodb:{op}", table(_param(params, "TableName", call)))]
    return [Request(f"dynamodb:{op}", "*")]


def _s3(op: str, params: Mapping[str, Any], call: str) -> list[Request]:
    if op in ("CopyObject", "UploadPartCopy"):
        destination = _object_arn(_param(params, "Bucket", call), _param(params, "Key", call))
        source = _copy_source_arn(_param(params, "CopySource", call), call)
        return [Request("s3:PutObject", destination), Request("s3:GetObject", source)]
    if op == "DeleteObjects":
        bucket = _param(params, "Bucket", call)
        objects = _param(_param(params, "Delete", call), "Objects", call)
        return [Request("s3:DeleteObject", _object_arn(bucket, _param(o, "Key", call))) for o in objects]
    if op not in _S3:
        # S3 action names do not follow the API names reliably: a guess on "*" is the honest
        # fallback (it is denied unless something grants Resource "*").
        return [Request(f"s3:{op}", "*")]
    action, scope = _S3[op]
    if scope == "none":
        return [Request(action, "*")]
    bucket = _param(params, "Bucket", call)
    if scope == "bucket":
        return [Request(action, _bucket_arn(bucket))]
    return [Request(action, _object_arn(bucket, _param(params, "Key", call)))]


def _sqs(op: str, params: Mapping[str, Any], region: str, account: str, call: str) -> list[Request]:
    action = _SQS_ACTION.get(op, f"sqs:{op}")
    if op in ("GetQueueUrl", "CreateQueue"):
        owner = params.get("QueueOwnerAWSAccountId") or account
        return [Request(action, f"arn:aws:sqs:{region}:{owner}:{_param(params, 'QueueName', call)}")]
    if "QueueUrl" in params:
        # SQS's IAM actions are named after the API operations (batches aside).
        return [Request(action, _queue_arn(_param(params, "QueueUrl", call), region, account, call))]
    return [Request(action, "*")]


def requests_for(
    service: str,
    operation: str,
    params: dict[str, Any],
    *,
    region: str,
    account: str = ACCOUNT_ID,
    secret_arn: Callable[[str], str] | None = None,
) -> list[Request]:
    """The IAM action(s) and resource ARN(s) one boto3 API call needs. `service` is the botocore
    service name ("dynamodb", "s3", "sqs", "secretsmanager", ...), `operation` the botocore operation
    name ("UpdateItem", "HeadObject", ...), `params` the API parameters as passed to the client
    (e.g. {"TableName": "t", "Key": {...}}). `secret_arn(secret_id)` maps a secret name to its ARN
    (SecretId may already be an ARN: then use it as is).

    Identical requests are returned once, in first-seen order. ValueError when a parameter the
    resource depends on is missing."""
    call = f"{service}.{operation}"
    if service == "dynamodb":
        requests = _dynamodb(operation, params, region, account, call)
    elif service == "s3":
        requests = _s3(operation, params, call)
    elif service == "sqs":
        requests = _sqs(operation, params, region, account, call)
    elif service == "secretsmanager" and "SecretId" in params:
        secret = _secret_arn(_param(params, "SecretId", call), region, account, secret_arn)
        requests = [Request(f"secretsmanager:{operation}", secret)]
    elif service == "sts" and operation == "GetCallerIdentity":
        # IAM never denies GetCallerIdentity, not even with an explicit Deny.
        requests = []
    elif service == "sts" and operation == "AssumeRole":
        requests = [Request("sts:AssumeRole", _param(params, "RoleArn", call))]
    else:
        requests = [Request(f"{_IAM_PREFIX.get(service, service)}:{operation}", "*")]
    return list(dict.fromkeys(requests))


# ---------------------------------------------------------------- least privilege


def unused_grants(policy: Policy, allowed: Iterable[Decision]) -> list[tuple[Statement, str, str]]:
    """(statement, action pattern, resource pattern) of every Allow statement's action x resource pair
    that no allowed decision was matched by: least-privilege report. Only statements whose `source` is
    "inline" are reported (managed/implicit policies are not the template author's grants).

    A pair counts as used when an allowed request matches it, whichever statement decide()
    credited: a grant duplicated by a managed policy (e.g. SAM's SQS event role) is not reported
    as removable. NotAction/NotResource statements grant a complement that cannot be listed
    pair by pair, so they are not reported."""
    requests = [d.request for d in allowed if d.allowed]
    report = []
    for statement in policy.statements:
        if statement.effect != "Allow" or statement.source != "inline":
            continue
        if not statement.actions or not statement.resources:
            continue
        for action in dict.fromkeys(statement.actions):
            for resource in dict.fromkeys(statement.resources):
                used = any(
                    action_matches(action, r.action) and resource_matches(resource, r.resource)
                    for r in requests
                )
                if not used:
                    report.append((statement, action, resource))
    return report
