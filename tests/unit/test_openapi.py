"""GET /v1/openapi.json and GET /v1/docs through the API function, the document's agreement
with template.yaml and with the parsers that really check requests, real resources held to
its schemas, and the bugs schemathesis found (tests/integration/test_openapi_local.py)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi

import api_handler
from conftest import DEV_KEY, FakeContext, load_event
from test_jobs_api import call
from test_template import TEMPLATE, http_routes

ROOT = Path(__file__).resolve().parents[2]
DOC_ROUTES = {("GET", "/v1/openapi.json"), ("GET", "/v1/docs")}
# For providers, authenticated per provider, served by another function: not the client API.
PROVIDER_ROUTES = {("POST", "/v1/callbacks/{provider}/{job_id}")}


def get(path: str, query: str = "", headers: dict[str, str] | None = None) -> dict:
    """An anonymous GET through the real handler, as API Gateway sends it."""
    event = {
        "version": "2.0", "routeKey": f"GET {path}", "rawPath": path, "rawQueryString": query,
        "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")) if query else None,
        "headers": {"host": "api.example", **(headers or {})}, "isBase64Encoded": False,
        "requestContext": {"http": {"method": "GET", "path": path, "sourceIp": "203.0.113.1"},
                           "domainName": "api.example", "requestId": "r", "stage": "$default"},
    }
    return api_handler.lambda_handler(event, FakeContext())


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    response = get("/v1/openapi.json")
    assert response["statusCode"] == 200, response["body"]
    assert response["headers"]["Content-Type"] == "application/json"
    return json.loads(response["body"])


def schema_of(document: dict[str, Any], model: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema, resolving $refs within the document."""
    root = {"$ref": f"#/components/schemas/{model}", "components": document["components"]}
    validator = jsonschema.Draft202012Validator
    return validator(root, format_checker=validator.FORMAT_CHECKER)


def normalised(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


# --------------------------------------------------------------------------- serving


def test_the_document_is_public_openapi_3_1_and_valid(document):
    # No Authorization header at all (and no AWS: nothing is looked up).
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]


def test_the_document_lists_every_v1_route_of_the_template(document):
    """Every /v1 route API Gateway sends to the API function is documented, with its method,
    and nothing else is; the provider callback route is the one left out, on purpose."""
    declared = {(m, normalised(p)) for (m, p) in http_routes(TEMPLATE) if p.startswith("/v1/")}
    documented = {(method.upper(), normalised(path))
                  for path, item in document["paths"].items() for method in item}
    assert documented == declared - {(m, normalised(p)) for m, p in DOC_ROUTES | PROVIDER_ROUTES}
    assert all(http_routes(TEMPLATE)[r] == "ApiFunction" for r in DOC_ROUTES)


def test_every_operation_documents_its_answers(document):
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len({op["operationId"] for op in operations}) == len(operations)
    for op in operations:
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert len(ok) == 1, op["operationId"]
        for status, response in op["responses"].items():
            expected = "ErrorBody" if status[0] in "45" else None
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref.startswith("#/components/schemas/")
            assert expected is None or ref.endswith(expected), (op["operationId"], status)
        assert {"401", "500"} <= set(op["responses"]), op["operationId"]
    assert document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobCreate"}


def test_every_ref_resolves(document):
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs and refs <= set(document["components"]["schemas"])


def test_docs_is_public_swagger_ui_html_with_the_document_inlined(document):
    response = get("/v1/docs")
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith("text/html")
    html = response["body"]
    assert html.startswith("<!DOCTYPE html>") and "SwaggerUIBundle" in html
    assert '"operationId":"createJob"' in html
    # The page's own "download" link.
    as_json = get("/v1/docs", "format=json")
    assert json.loads(as_json["body"]) == document


def test_docs_are_compressed_when_the_client_accepts_it():
    response = get("/v1/docs", headers={"accept-encoding": "gzip"})
    assert response["isBase64Encoded"] and response["headers"]["Content-Encoding"] == "gzip"
    assert len(base64.b64decode(response["body"])) < 700_000  # ~1.7 MB of inlined Swagger UI


def test_the_api_cold_start_does_not_import_pydantic():
    """The document is built on its first request; pydantic would add ~70 ms to every cold start."""
    code = ("import sys; import api_handler; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))")
    env_paths = [str(ROOT / "layers/shared"), str(ROOT / "functions/api"), str(ROOT / "local")]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,  # noqa: S603
                         env={"PYTHONPATH": ":".join(env_paths), "AWS_DEFAULT_REGION": "us-east-1",
                              "POWERTOOLS_TRACE_DISABLED": "true"})
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- models vs parsers


def test_the_request_models_have_the_parsers_fields():
    from motionrelay import uploads, validation
    from motionrelay.api.models import JobCreate, UploadCreate

    assert set(JobCreate.model_fields) == validation._FIELDS
    assert set(UploadCreate.model_fields) == uploads._FIELDS


def _parse_refusal(body: dict) -> str | None:
    """The field parse_job_request refuses `body` for ("" when it names none), or None."""
    from motionrelay.domain.errors import InvalidRequest
    from motionrelay.validation import parse_job_request

    try:
        parse_job_request(json.dumps(body))
    except InvalidRequest as exc:
        return exc.field or ""
    return None


VALID = {"image": "https://x.example/a.png", "video": "https://x.example/v.mp4"}
# What the schema can say, said the same way by JobCreate and by the parser.
JOB_BODIES = [
    (VALID, None),
    ({**VALID, "character_orientation": "video", "quality": "std", "prompt": "x" * 2500,
      "negative_prompt": None, "keep_original_sound": False, "provider": "novita",
      "webhook_url": "https://hooks.example/h", "metadata": {"order": 1}}, None),
    ({**VALID, "metadata": None, "prompt": None}, None),
    ({"video": VALID["video"]}, "image"),
    ({"image": VALID["image"]}, "video"),
    ({**VALID, "image": 5}, "image"),
    ({**VALID, "image": ""}, "image"),
    ({**VALID, "colour": "red"}, "colour"),
    ({**VALID, "quality": "ultra"}, "quality"),
    ({**VALID, "quality": 1080}, "quality"),
    ({**VALID, "character_orientation": True}, "character_orientation"),
    ({**VALID, "provider": "openai"}, "provider"),
    ({**VALID, "keep_original_sound": "yes"}, "keep_original_sound"),
    ({**VALID, "keep_original_sound": 0}, "keep_original_sound"),
    ({**VALID, "prompt": "x" * 2501}, "prompt"),
    ({**VALID, "negative_prompt": ["a"]}, "negative_prompt"),
    ({**VALID, "metadata": ["a"]}, "metadata"),
    ({**VALID, "webhook_url": "http://hooks.example/h"}, "webhook_url"),
    ({**VALID, "webhook_url": "https://h.example/" + "x" * 2040}, "webhook_url"),
]


@pytest.mark.parametrize(("body", "field"), JOB_BODIES)
def test_job_create_and_the_parser_agree(document, body, field):
    errors = list(schema_of(document, "JobCreate").iter_errors(body))
    assert _parse_refusal(body) == field
    if field is None:
        assert errors == []
    else:
        assert errors, f"the document accepts what the API refuses ({field})"


@pytest.mark.parametrize(("body", "field"), [
    ({"content_type": "image/png", "size_bytes": 10}, None),
    ({"content_type": "video/quicktime", "size_bytes": 1}, None),
    ({"size_bytes": 10}, "content_type"),
    ({"content_type": "image/gif", "size_bytes": 10}, "content_type"),
    ({"content_type": "image/png", "size_bytes": 0}, "size_bytes"),
    ({"content_type": "image/png", "size_bytes": 1.5}, "size_bytes"),
    ({"content_type": "image/png", "size_bytes": True}, "size_bytes"),
    ({"content_type": "image/png", "size_bytes": 10, "name": "a.png"}, "name"),
])
def test_upload_create_and_the_parser_agree(document, body, field):
    from motionrelay.domain.errors import MotionRelayError
    from motionrelay.uploads import parse_upload_request

    try:
        parse_upload_request(json.dumps(body))
        refused = None
    except MotionRelayError as exc:
        refused = exc.field
    assert refused == field
    assert (list(schema_of(document, "UploadCreate").iter_errors(body)) == []) == (field is None)


# --------------------------------------------------------------------------- real resources


def _job(**fields: Any):
    from motionrelay.domain.job import Job, Phase

    base = {
        "id": "job_0193a1b2c3d4e5f6", "tenant_id": "tenant-a", "phase": Phase.PENDING,
        "created_at": "2026-11-21T14:30:00.000Z", "updated_at": "2026-11-21T14:30:01.000Z",
        "deadline_at": 0,
        "request": {
            "image": {"source": "data_uri", "content_type": "image/png", "size_bytes": 10, "sha256": "ab",
                      "format": "png", "width": 480, "height": 720},
            "video": {"source": "upload", "upload_id": "upload:" + "0" * 32, "content_type": "video/mp4",
                      "size_bytes": 99, "format": "mp4", "width": 480, "height": 720,
                      "duration_seconds": 4.0, "has_audio": True},
            "character_orientation": "image", "quality": "pro", "prompt": None, "negative_prompt": None,
            "keep_original_sound": True, "provider": None, "webhook_url": None,
        },
    }
    return Job(**{**base, **fields})


def test_job_resources_in_every_state_conform(document):
    from motionrelay.domain.job import Phase

    at = "2026-11-21T14:31:00.000Z"
    attempts = [{"provider": "novita", "outcome": "skipped", "reason": "no prompt", "at": at},
                {"provider": None, "outcome": "no_provider_available", "message": "later", "at": at},
                {"provider": "kie", "outcome": "submitted", "at": at}]
    jobs = [
        _job(),
        _job(phase=Phase.RUNNING, provider="kie", provider_task_id="task_1", progress=40, attempts=attempts,
             metadata={"order": {"id": 42}}),
        _job(phase=Phase.FAILED, provider="kie", error={"code": "moderation", "message": "refused"},
             completed_at=at, cost={"credits": 12}),
        _job(phase=Phase.CANCELED, completed_at=at),
    ]
    resources = [j.resource() for j in jobs]
    succeeded = _job(phase=Phase.SUCCEEDED, provider="kie", progress=100, completed_at=at, output={
        "key": "outputs/job_1.mp4", "size_bytes": 172421, "sha256": "f" * 64, "content_type": "video/mp4"})
    resources.append(succeeded.resource("https://media.s3.example/outputs/job_1.mp4?X-Amz-Signature=1", at))
    validator = schema_of(document, "Job")
    for resource in resources:
        assert list(validator.iter_errors(resource)) == [], resource["status"]
    schema_of(document, "JobPage").validate({"jobs": resources, "next_cursor": None})


def test_webhook_secrets_and_errors_conform(document):
    from motionrelay.domain.errors import InputTooLong, NotFound
    from motionrelay.webhook_secrets import WebhookSecret, new_secret

    fresh = WebhookSecret(secret=new_secret(), created_at="2026-11-21T14:30:00.000Z")
    rotated = WebhookSecret(secret=new_secret(), created_at="2026-11-21T14:30:00.000Z", previous=new_secret(),
                            previous_until=2_000_000_000)
    for secret in (fresh, rotated):
        schema_of(document, "WebhookSecret").validate(secret.public(now=1_900_000_000))
    assert "previous_expires_at" in rotated.public(now=1_900_000_000)
    for error in (NotFound("No job."), InputTooLong("too long", field="video")):
        schema_of(document, "ErrorBody").validate(error.to_body())


def test_api_answers_conform(aws, document):
    """Through the handler: an upload, the secret (created, rotated), an empty listing, a 404."""
    from test_uploads import new_upload

    schema_of(document, "Upload").validate(new_upload("video/mp4", 1000))
    for method, path, model in (("GET", "/v1/webhook-secret", "WebhookSecret"),
                                ("POST", "/v1/webhook-secret/rotate", "WebhookSecret"),
                                ("GET", "/v1/jobs", "JobPage"), ("GET", "/v1/jobs/job_missing", "ErrorBody")):
        status, body = call(method, path)
        assert status in (200, 404)
        schema_of(document, model).validate(body)


# --------------------------------------------------------------------------- found by schemathesis


def _post(path: str, body: bytes, *, content_type: str = "application/json") -> dict:
    """A request whose body API Gateway passes base64-encoded (it is not valid UTF-8 text)."""
    event = load_event("api_post_job.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"POST {path}"
    event["headers"]["content-type"] = content_type
    event["headers"]["authorization"] = f"Bearer {DEV_KEY}"
    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return api_handler.lambda_handler(event, FakeContext())


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/uploads"])
def test_a_body_that_is_not_utf8_is_400_not_500(aws, path):
    response = _post(path, b"x\xbe\xc3Cd\xf2K")
    assert response["statusCode"] == 400, response["body"]
    assert json.loads(response["body"])["error"]["code"] == "invalid_request"


def test_a_json_body_sent_as_binary_is_read(aws, kie):
    """The same bytes are read whether API Gateway passes them as text or base64."""
    response = _post("/v1/uploads", json.dumps({"content_type": "image/png", "size_bytes": 10}).encode(),
                     content_type="application/octet-stream")
    assert response["statusCode"] == 201, response["body"]


def test_a_callback_body_that_is_not_utf8_is_not_a_500(aws, kie):
    import webhook_handler

    event = load_event("callback_kie.json")
    event["body"], event["isBase64Encoded"] = base64.b64encode(b"\xff\xfe{garbage").decode(), True
    response = webhook_handler.lambda_handler(event, FakeContext())
    assert response["statusCode"] < 500, response["body"]


@pytest.mark.parametrize("limit", ["\u00b2", "\u0663", "1.0", "-1", "0", "101", " 5"])
def test_a_limit_that_is_not_plain_ascii_digits_is_400(aws, limit):
    status, body = call("GET", "/v1/jobs", f"limit={limit}")
    assert (status, body["error"]["field"]) == (400, "limit")
