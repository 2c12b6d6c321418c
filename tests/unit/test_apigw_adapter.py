"""The local stack's API Gateway emulation: routes from the template, 2.0 events, responses.

Pure functions only: no sockets, no moto, no handlers.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from cfnlint.decode import decode_str

from motionrelay_local.apigw import (
    LAMBDA_PAYLOAD_BYTES,
    MAX_REQUEST_BYTES,
    Gateway,
    MalformedResponse,
    Route,
    RouteTable,
    build_event,
    is_text_content_type,
    to_http_response,
)
from motionrelay_local.lambda_runtime import (
    failed_message_ids,
    lambda_context_fields,
    scheduled_event,
    sqs_event,
)
from motionrelay_local.template import SamTemplate, TemplateError
from motionrelay_local.worker import LambdaContext

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  LogLevel:
    Type: String
    Default: INFO
Globals:
  Function:
    Timeout: 30
    MemorySize: 256
    Environment:
      Variables:
        POWERTOOLS_LOG_LEVEL: !Ref LogLevel
        POWERTOOLS_SERVICE_NAME: motionrelay
        MOTIONRELAY_TABLE: !Ref JobsTable
Resources:
  JobsTable:
    Type: AWS::DynamoDB::Table
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/api/
      Handler: api_handler.lambda_handler
      Timeout: 29
      Events:
        CreateJob:
          Type: HttpApi
          Properties: {ApiId: !Ref HttpApi, Method: POST, Path: /v1/jobs}
        GetJob:
          Type: HttpApi
          Properties: {ApiId: !Ref HttpApi, Method: get, Path: "/v1/jobs/{id}"}
        Cancel:
          Type: HttpApi
          Properties: {ApiId: !Ref HttpApi, Method: POST, Path: "/v1/jobs/{id}/cancel"}
  WebhookFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/webhook/
      Handler: webhook_handler.lambda_handler
      Events:
        Callback:
          Type: HttpApi
          Properties: {Method: POST, Path: "/v1/callbacks/{provider}/{job_id}"}
  TransferFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/transfer/
      Handler: transfer_handler.lambda_handler
      Events:
        Queue:
          Type: SQS
          Properties: {Queue: !GetAtt Q.Arn, BatchSize: 1, FunctionResponseTypes: [ReportBatchItemFailures]}
"""


def sam(text: str = TEMPLATE) -> SamTemplate:
    template, matches = decode_str(text)
    assert not matches
    return SamTemplate(template, ROOT)


def table() -> RouteTable:
    return RouteTable(sam().http_routes())


def event_for(method: str, target: str, headers=(), body: bytes = b"") -> dict:
    match = table().match(method, target.partition("?")[0])
    assert match is not None
    return build_event(method=method, target=target, headers=list(headers), body=body, match=match,
                       source_ip="127.0.0.1", request_id="JKJaXmPLvHcESHA=", now=1_795_271_400.5)


# -- the template ------------------------------------------------------------------------


def test_routes_come_from_the_templates_httpapi_events():
    keys = {(r.route_key, r.target) for r in sam().http_routes()}
    assert keys == {
        ("POST /v1/jobs", "ApiFunction"),
        ("GET /v1/jobs/{id}", "ApiFunction"),
        ("POST /v1/jobs/{id}/cancel", "ApiFunction"),
        ("POST /v1/callbacks/{provider}/{job_id}", "WebhookFunction"),
    }


def test_function_specs_apply_globals_and_resolve_code_folders():
    fns = sam().functions
    assert fns["ApiFunction"].timeout == 29 and fns["ApiFunction"].memory == 256
    assert fns["WebhookFunction"].timeout == 30
    assert fns["ApiFunction"].code_dir == (ROOT / "functions" / "api").resolve()
    assert fns["ApiFunction"].handler == "api_handler.lambda_handler"
    assert sam().function_for_folder("transfer").logical_id == "TransferFunction"
    assert fns["TransferFunction"].events_of_type("SQS")[0]["Properties"]["BatchSize"] == 1


def test_payload_format_1_is_refused():
    text = TEMPLATE.replace("Path: /v1/jobs}", "Path: /v1/jobs, PayloadFormatVersion: '1.0'}", 1)
    with pytest.raises(TemplateError, match="PayloadFormatVersion"):
        sam(text).http_routes()


def test_the_repositorys_template_routes_the_fixed_api():
    t = SamTemplate.from_file(ROOT / "template.yaml", ROOT)
    routes = RouteTable(t.http_routes())  # duplicates would raise
    assert routes.match("POST", "/v1/jobs").route.target == t.function_for_folder("api").logical_id
    assert routes.match("GET", "/v1/jobs/job_1").route.target == t.function_for_folder("api").logical_id
    webhook = routes.match("POST", "/v1/callbacks/kie/job_1")
    assert webhook.route.target == t.function_for_folder("webhook").logical_id


# -- route matching ----------------------------------------------------------------------


def test_path_variables_match_exactly_one_segment():
    routes = table()
    match = routes.match("GET", "/v1/jobs/job_123")
    assert match.route.route_key == "GET /v1/jobs/{id}"
    assert match.path_parameters == {"id": "job_123"}
    assert routes.match("GET", "/v1/jobs/a/b") is None
    assert routes.match("GET", "/v1/jobs/") is None  # an empty segment is no value
    assert routes.match("POST", "/v1/jobs/job_1/cancel").path_parameters == {"id": "job_1"}


def test_two_path_variables_and_percent_decoding():
    match = table().match("POST", "/v1/callbacks/kie/job%5F1")
    assert match.path_parameters == {"provider": "kie", "job_id": "job_1"}


def test_unknown_route_or_method_is_no_match():
    routes = table()
    assert routes.match("GET", "/v2/jobs") is None
    assert routes.match("DELETE", "/v1/jobs/job_1") is None  # HTTP API answers 404, not 405
    assert routes.match("GET", "/v1/jobs") is None


def test_greedy_proxy_takes_the_rest_and_loses_to_specific_routes():
    routes = RouteTable([
        Route("GET", "/files/{proxy+}", "Files"),
        Route("GET", "/files/special", "Special"),
        Route("ANY", "/files/{name}", "AnyName"),
        Route("GET", "/files/{name}", "GetName"),
    ])
    greedy = routes.match("GET", "/files/a/b/c.txt")
    assert greedy.route.target == "Files" and greedy.path_parameters == {"proxy": "a/b/c.txt"}
    assert routes.match("GET", "/files/special").route.target == "Special"
    assert routes.match("GET", "/files/x").route.target == "GetName"  # method beats ANY
    assert routes.match("PUT", "/files/x").route.target == "AnyName"
    assert routes.match("GET", "/files") is None  # greedy needs at least one segment


def test_default_route_catches_the_rest():
    routes = RouteTable([Route("GET", "/a", "A"), Route("ANY", "$default", "Fallback")])
    assert routes.match("GET", "/a").route.target == "A"
    fallback = routes.match("POST", "/anything/else")
    assert fallback.route.target == "Fallback" and fallback.route.route_key == "$default"


def test_bad_routes_are_refused():
    with pytest.raises(ValueError, match="greedy"):
        Route("GET", "/{proxy+}/x", "F")
    with pytest.raises(ValueError, match="duplicate"):
        RouteTable([Route("GET", "/a", "F"), Route("get", "/a", "G")])


# -- the 2.0 event -----------------------------------------------------------------------


def test_event_shape_for_a_get_with_path_parameters():
    event = event_for("GET", "/v1/jobs/job_1", [("Host", "127.0.0.1:3000"), ("User-Agent", "curl/8")])
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /v1/jobs/{id}"
    assert event["rawPath"] == "/v1/jobs/job_1" and event["rawQueryString"] == ""
    assert event["pathParameters"] == {"id": "job_1"}
    assert "queryStringParameters" not in event and "cookies" not in event and "body" not in event
    assert event["isBase64Encoded"] is False and event["stageVariables"] is None
    ctx = event["requestContext"]
    assert ctx["http"] == {"method": "GET", "path": "/v1/jobs/job_1", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "curl/8"}
    assert ctx["routeKey"] == "GET /v1/jobs/{id}" and ctx["stage"] == "$default"
    assert ctx["requestId"] == "JKJaXmPLvHcESHA=" and ctx["accountId"] == "123456789012"
    assert ctx["domainName"] == "127.0.0.1:3000" and ctx["domainPrefix"] == "127"
    assert ctx["time"] == "21/Nov/2026:14:30:00 +0000" and ctx["timeEpoch"] == 1_795_271_400_500
    assert ctx["apiId"]


def test_headers_are_lowercased_and_repeats_comma_joined():
    headers = [("Authorization", "Bearer k"), ("X-Thing", "a"), ("x-thing", "b")]
    event = event_for("GET", "/v1/jobs/x", headers)
    headers = event["headers"]
    assert headers["authorization"] == "Bearer k"
    assert headers["x-thing"] == "a,b"
    assert all(name == name.lower() for name in headers)
    assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-amzn-trace-id"].startswith("Root=1-")


def test_cookies_leave_the_headers_for_their_own_list():
    event = event_for("GET", "/v1/jobs/x", [("Cookie", "a=1; b=2"), ("Cookie", "c=3")])
    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]


def test_query_string_raw_and_decoded_with_repeats_joined():
    event = event_for("GET", "/v1/jobs/x?status=queued&status=running&q=a%20b&empty=")
    assert event["rawQueryString"] == "status=queued&status=running&q=a%20b&empty="
    assert event["queryStringParameters"] == {"status": "queued,running", "q": "a b", "empty": ""}


def test_json_body_is_text():
    body = json.dumps({"image": "https://x", "prompt": "héllo"}).encode()
    event = event_for("POST", "/v1/jobs", [("Content-Type", "application/json; charset=utf-8")], body)
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"])["prompt"] == "héllo"


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png", None])
def test_non_text_bodies_are_base64(content_type):
    body = b"\x89PNG\r\n\x1a\n\x00\xff"
    headers = [("Content-Type", content_type)] if content_type else []
    event = event_for("POST", "/v1/jobs", headers, body)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_text_content_types():
    for ct in ("text/plain", "application/json", "application/problem+json", "application/xml",
               "application/x-www-form-urlencoded", "TEXT/HTML; charset=utf-8"):
        assert is_text_content_type(ct), ct
    for ct in ("application/octet-stream", "video/mp4", "multipart/form-data; boundary=x", "", None):
        assert not is_text_content_type(ct), ct


def test_invalid_utf8_in_a_text_type_falls_back_to_base64():
    event = event_for("POST", "/v1/jobs", [("Content-Type", "application/json")], b"\xff\xfe")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\xfe"


# -- responses ---------------------------------------------------------------------------


def test_response_mapping_with_cookies_and_base64():
    resp = to_http_response({
        "statusCode": 202,
        "headers": {"Content-Type": "application/json", "Location": "/v1/jobs/x", "Content-Length": "999"},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": base64.b64encode(b'{"ok":true}').decode(),
        "isBase64Encoded": True,
    }, request_id="rid")
    assert resp.status == 202 and resp.body == b'{"ok":true}'
    assert ("Location", "/v1/jobs/x") in resp.headers
    assert [v for k, v in resp.headers if k == "set-cookie"] == ["a=1; Path=/", "b=2"]
    assert not any(k.lower() == "content-length" for k, _ in resp.headers)  # the gateway frames it
    assert ("apigw-requestid", "rid") in resp.headers


def test_result_without_status_code_is_a_json_200():
    resp = to_http_response({"hello": "world"})
    assert resp.status == 200 and json.loads(resp.body) == {"hello": "world"}
    assert ("content-type", "application/json") in resp.headers


@pytest.mark.parametrize("result", [
    {"statusCode": "200", "body": ""},
    {"statusCode": 200, "body": {"not": "a string"}},
    {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
    {"statusCode": 200, "headers": {"x": ["a", "b"]}},
])
def test_malformed_results_are_refused(result):
    with pytest.raises(MalformedResponse):
        to_http_response(result)


def _gateway(result=None, exc: Exception | None = None):
    calls = []

    def invoke(target, event):
        calls.append((target, event))
        if exc:
            raise exc
        return result

    return Gateway(table(), invoke), calls


def _handle(gw, method, target, body=b"", headers=()):
    return gw.handle(method=method, target=target, headers=list(headers), body=body, source_ip="127.0.0.1")


def test_gateway_routes_to_the_templates_function():
    gw, calls = _gateway({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"})
    resp, match = _handle(gw, "GET", "/v1/jobs/job_9?x=1")
    assert resp.status == 200 and match.route.route_key == "GET /v1/jobs/{id}"
    assert calls[0][0] == "ApiFunction"
    assert calls[0][1]["queryStringParameters"] == {"x": "1"}


def test_gateway_404s_unknown_routes_like_api_gateway():
    gw, calls = _gateway()
    resp, match = _handle(gw, "GET", "/nope")
    assert match is None and not calls
    assert resp.status == 404 and json.loads(resp.body) == {"message": "Not Found"}


def test_gateway_maps_handler_exceptions_and_malformed_results_to_500():
    gw, _ = _gateway(exc=RuntimeError("boom"))
    resp, _ = _handle(gw, "GET", "/v1/jobs/x")
    assert resp.status == 500 and json.loads(resp.body) == {"message": "Internal Server Error"}
    gw, _ = _gateway({"statusCode": 200, "body": 42})
    assert _handle(gw, "GET", "/v1/jobs/x")[0].status == 500


def test_gateway_payload_limits():
    gw, calls = _gateway({"statusCode": 200})
    resp, _ = _handle(gw, "POST", "/v1/jobs", body=b"x" * (MAX_REQUEST_BYTES + 1))
    assert resp.status == 413 and json.loads(resp.body) == {"message": "Request Entity Too Large"}
    # Under API Gateway's 10 MB but over Lambda's 6 MB synchronous invocation payload.
    resp, _ = _handle(gw, "POST", "/v1/jobs", body=b"x" * LAMBDA_PAYLOAD_BYTES,
                      headers=[("content-type", "application/octet-stream")])
    assert resp.status == 413 and not calls
    gw, _ = _gateway({"statusCode": 200, "body": "x" * LAMBDA_PAYLOAD_BYTES})
    assert _handle(gw, "GET", "/v1/jobs/x")[0].status == 500  # Lambda refuses the response


# -- the other event sources -------------------------------------------------------------


def test_scheduled_event_shape():
    event = scheduled_event("motionrelay-poller-schedule", now=1_795_271_400)
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/motionrelay-poller-schedule"]
    assert event["time"] == "2026-11-21T14:30:00Z" and event["detail"] == {}


def test_sqs_event_shape():
    message = {
        "MessageId": "m1", "ReceiptHandle": "rh", "Body": '{"job_id": "job_1"}', "MD5OfBody": "md5",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "S",
                       "ApproximateFirstReceiveTimestamp": "2"},
        "MessageAttributes": {"a": {"DataType": "String", "StringValue": "v"},
                              "b": {"DataType": "Binary", "BinaryValue": b"\x00"}},
    }
    record = sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:q")["Records"][0]
    assert record["messageId"] == "m1" and record["receiptHandle"] == "rh" and record["md5OfBody"] == "md5"
    assert record["eventSource"] == "aws:sqs" and record["awsRegion"] == "us-east-1"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:q"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["a"]["stringValue"] == "v"
    assert record["messageAttributes"]["b"]["binaryValue"] == "AA=="


def test_partial_batch_responses_read_like_lambda():
    ids = ["m1", "m2"]
    assert failed_message_ids(None, ids) == set()
    assert failed_message_ids({"batchItemFailures": []}, ids) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ids) == {"m2"}
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, ids) == set(ids)
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) == set(ids)
    assert failed_message_ids("garbage", ids) == set(ids)


def test_context_counts_down_to_the_invocation_deadline():
    spec = sam().functions["ApiFunction"]
    ctx = LambdaContext(lambda_context_fields(spec), "req-1", time.time() + spec.timeout)
    assert 28_000 < ctx.get_remaining_time_in_millis() <= 29_000
    assert ctx.function_name and ctx.invoked_function_arn.endswith(ctx.function_name)
    assert ctx.memory_limit_in_mb == 256 and ctx.aws_request_id == "req-1"
    late = LambdaContext(lambda_context_fields(spec), "r", time.time() - 1)
    assert late.get_remaining_time_in_millis() == 0
