"""Creates the template's data resources in moto, as CloudFormation would from `template.yaml`.

Tables (keys, indexes, TTL), buckets (lifecycle; CORS, where the HTTP API's AWS origin
stands for the local API's, and moto applies the rules: the stack turns its allow-all CORS
off), queues (visibility, retention, redrive to their DLQs) and secrets (their initial
SecretString) are made from their template properties, with intrinsics resolved; the result
is what `!Ref` and `!GetAtt` of each give, which the per-function environments and IAM
policies are then resolved against. Resources moto cannot or need not run locally (the HTTP
API, log groups, alarms, the layer) get placeholder references.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from motionrelay_local.apigw import ACCOUNT_ID
from motionrelay_local.template import Resolver, SamTemplate, TemplateError

TABLE = "AWS::DynamoDB::Table"
BUCKET = "AWS::S3::Bucket"
QUEUE = "AWS::SQS::Queue"
SECRET = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type, not a password
LAYER = "AWS::Serverless::LayerVersion"
PROVISIONED = (TABLE, BUCKET, QUEUE, SECRET)


def physical_name(stack_name: str, logical_id: str) -> str:
    """Like CloudFormation's generated names (`<stack>-<LogicalId>-<suffix>`), without the suffix."""
    return re.sub(r"[^a-z0-9-]", "-", f"{stack_name}-{logical_id}".lower())[:80]


class Provisioner:
    def __init__(self, template: SamTemplate, *, stack_name: str, region: str, clients: Any,
                 parameters: dict[str, str], pseudo: dict[str, str], api_origin: str = "") -> None:
        self.template = template
        self.api_origin = api_origin  # the local API (http://127.0.0.1:<port>), for CORS rules
        self.stack_name = stack_name
        self.region = region
        self.clients = clients  # service name -> boto3 client (admin, against moto)
        self.refs: dict[str, str] = {}
        self.attributes: dict[str, str] = {}
        self.resolver = Resolver(template, refs=self.refs, attributes=self.attributes, parameters=parameters,
                                 pseudo=pseudo)
        self.types: dict[str, str] = {}

    def run(self) -> Resolver:
        resources = self.template.template.get("Resources") or {}
        pending = {}
        for logical_id, resource in resources.items():
            kind = str((resource or {}).get("Type", ""))
            self.types[logical_id] = kind
            if kind in PROVISIONED:
                pending[logical_id] = resource
            else:
                self._placeholder(logical_id, kind)
        # A resource whose properties name another (a queue's RedrivePolicy -> its DLQ) waits for it.
        while pending:
            progressed = False
            for logical_id, resource in list(pending.items()):
                try:
                    props = self.resolver.resolve(dict(resource.get("Properties") or {}))
                except TemplateError:
                    continue
                getattr(self, "_" + self.types[logical_id].rsplit("::", 1)[-1].lower())(logical_id, props)
                del pending[logical_id]
                progressed = True
            if not progressed:
                names = ", ".join(sorted(pending))
                raise TemplateError(f"cannot resolve the properties of {names} (a cycle, or a reference to "
                                    "something the local stack does not create)")
        return self.resolver

    def _placeholder(self, logical_id: str, kind: str) -> None:
        name = physical_name(self.stack_name, logical_id)
        self.refs[logical_id] = name
        service = kind.split("::")[1].lower() if kind.count("::") >= 2 else "local"
        self.attributes[f"{logical_id}.Arn"] = f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{name}"

    def _table(self, logical_id: str, props: dict) -> None:
        name = props.get("TableName") or physical_name(self.stack_name, logical_id)
        args: dict[str, Any] = {"TableName": name}
        for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
                    "BillingMode", "ProvisionedThroughput", "StreamSpecification"):
            if key in props:
                args[key] = props[key]
        args.setdefault("BillingMode", "PROVISIONED")
        if "SSESpecification" in props:
            sse = props["SSESpecification"]
            args["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled")),
                                        **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {})}
        ddb = self.clients("dynamodb")
        description = ddb.create_table(**args)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "Enabled": bool(ttl.get("Enabled")), "AttributeName": ttl["AttributeName"]})
        self.refs[logical_id] = name
        self.attributes[f"{logical_id}.Arn"] = description["TableArn"]
        if description.get("LatestStreamArn"):
            self.attributes[f"{logical_id}.StreamArn"] = description["LatestStreamArn"]

    def _bucket(self, logical_id: str, props: dict) -> None:
        name = props.get("BucketName") or physical_name(self.stack_name, logical_id)
        s3 = self.clients("s3")
        s3.create_bucket(Bucket=name)
        rules = ((props.get("LifecycleConfiguration") or {}).get("Rules")) or []
        if rules:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={
                "Rules": [_lifecycle_rule(rule) for rule in rules]})
        cors = ((props.get("CorsConfiguration") or {}).get("CorsRules")) or []
        if cors:
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={
                "CORSRules": [self._cors_rule(rule) for rule in cors]})
        self.refs[logical_id] = name
        self.attributes[f"{logical_id}.Arn"] = f"arn:aws:s3:::{name}"
        self.attributes[f"{logical_id}.DomainName"] = f"{name}.s3.amazonaws.com"

    def _cors_rule(self, rule: dict) -> dict:
        """CloudFormation's CORS rule shape -> the S3 API's; an origin on the template's HTTP API
        (`https://<api>.execute-api...`) is the local API's origin here."""
        apis = {self.refs[lid] for lid, kind in self.types.items() if kind == "AWS::Serverless::HttpApi"}
        origins = []
        for origin in rule.get("AllowedOrigins") or []:
            host = urlsplit(str(origin)).hostname or ""
            if self.api_origin and ".execute-api." in host and host.split(".", 1)[0] in apis:
                origin = self.api_origin
            origins.append(str(origin))
        out: dict[str, Any] = {"AllowedMethods": list(rule.get("AllowedMethods") or []),
                               "AllowedOrigins": origins}
        for cfn, api in (("Id", "ID"), ("AllowedHeaders", "AllowedHeaders"),
                         ("ExposedHeaders", "ExposeHeaders"), ("MaxAge", "MaxAgeSeconds")):
            if cfn in rule:
                out[api] = rule[cfn]
        return out

    def _queue(self, logical_id: str, props: dict) -> None:
        name = props.get("QueueName") or physical_name(self.stack_name, logical_id)
        attributes = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
                    "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled"):
            if key in props:
                attributes[key] = str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
        if "RedrivePolicy" in props:
            policy = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = policy if isinstance(policy, str) else json.dumps(policy)
        sqs = self.clients("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.refs[logical_id] = url
        self.attributes.update({f"{logical_id}.Arn": arn, f"{logical_id}.QueueName": name,
                                f"{logical_id}.QueueUrl": url})

    def _secret(self, logical_id: str, props: dict) -> None:
        name = props.get("Name") or physical_name(self.stack_name, logical_id)
        secret = self.clients("secretsmanager").create_secret(
            Name=name, SecretString=str(props.get("SecretString") or "{}"))
        self.refs[logical_id] = secret["ARN"]
        self.attributes[f"{logical_id}.Id"] = secret["ARN"]


def _lifecycle_rule(rule: dict) -> dict:
    """CloudFormation's lifecycle rule shape -> the S3 API's."""
    out: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule.get("Status", "Enabled"),
                           "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    if "NoncurrentVersionExpirationInDays" in rule:
        days = int(rule["NoncurrentVersionExpirationInDays"])
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
    return out
