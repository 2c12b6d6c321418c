"""The API's OpenAPI 3.1 document (`GET /v1/openapi.json`) and Swagger UI (`GET /v1/docs`).

Powertools' event handler generates the document from the routes (paths, operation ids,
path parameters, the responses each route declares); the bodies' schemas come from the
pydantic models in `motionrelay.api.models`.

Cold start: nothing here imports pydantic at module level. Routes name their models by
reference (`{"$ref": "#/components/schemas/Job"}`), and the models are imported, and the
document built, on the first request for the document itself (then kept for the life of
the container). The request body and extra parameters are given to Powertools through
`openapi_extensions`, which it merges into the operation object as is: declaring them as
typed handler arguments would need `enable_validation=True`, which imports pydantic for
every cold start and answers malformed input with its own 422 shape instead of the API's
error codes (see validation.py).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import Response

from motionrelay.api.examples import EXAMPLES
from motionrelay.version import __version__ as API_VERSION  # info.version: the package's version

JSON = "application/json"
TITLE = "motionrelay"
OPENAPI_VERSION = "3.1.0"
DESCRIPTION = (
    "One API for Kling 2.6 Motion Control across its resellers: one character image and one motion "
    "reference video become a video of that character performing the motion.\n\n"
    "Every route here needs `Authorization: Bearer <api key>`. Errors are "
    '`{"error": {"code", "message", "field"?}}` with a stable snake_case `code`.'
)
SECURITY_SCHEME = "bearerAuth"

# What each error status means on this API (the `code`s it carries are in ErrorDetail).
ERRORS: dict[int, str] = {
    400: "Malformed request: not JSON, a wrong type, an unknown field or a bad value (invalid_request).",
    401: "Missing, unknown or revoked API key (unauthorized).",
    404: "No such job for this API key; another tenant's job looks exactly the same (not_found).",
    409: "Conflicts with the current state (job_finished, idempotency_conflict, idempotency_in_progress, "
         "rotation_in_progress, upload_changed).",
    413: "An input, or a declared upload size, is larger than any enabled provider accepts "
         "(input_too_large).",
    415: "An input is not a JPEG/PNG image or an MP4/MOV video, or not what it claims (unsupported_media).",
    422: "An input breaks the model's limits, cannot be fetched, points somewhere forbidden, or no enabled "
         "provider can serve the request (input_too_small, bad_aspect_ratio, input_too_short, "
         "input_too_long, input_unreachable, forbidden_url, provider_cannot_serve).",
    500: "Something failed on our side; retrying is safe with an Idempotency-Key (internal_error).",
}


def ref(model: str) -> dict[str, str]:
    """A reference to one of api_models' schemas by class name (checked by the unit tests)."""
    return {"$ref": f"#/components/schemas/{model}"}


def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def header(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


def _media(model: str) -> dict[str, Any]:
    """A JSON media type object: the model's schema and its realistic example (Swagger UI shows it)."""
    media: dict[str, Any] = {"schema": ref(model)}
    if model in EXAMPLES:
        media["example"] = EXAMPLES[model]
    return media


def operation(operation_id: str, summary: str, *, ok: tuple[int, str, str], errors: tuple[int, ...],
              tag: str, body: str | None = None, parameters: list[dict[str, Any]] | None = None,
              ok_headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for a route decorator: its OpenAPI operation, pydantic-free.

    `ok` is (status, response model, description); `errors` the statuses it can refuse
    with, each answered with ErrorBody; 500 is added to every operation."""
    status, model, description = ok
    success: dict[str, Any] = {"description": description, "content": {JSON: _media(model)}}
    if ok_headers:
        success["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                              for name, text in ok_headers.items()}
    responses: dict[int, Any] = {status: success}
    for code in (*errors, 500):
        responses[code] = {"description": ERRORS[code], "content": {JSON: {"schema": ref("ErrorBody")}}}
    extensions: dict[str, Any] = {}
    if body:
        extensions["requestBody"] = {"required": True, "content": {JSON: _media(body)}}
    if parameters:
        extensions["parameters"] = parameters
    return {"operation_id": operation_id, "summary": summary, "tags": [tag], "responses": responses,
            "openapi_extensions": extensions or None}


# --------------------------------------------------------------------------- the document


@cache
def document(app: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app`'s routes, with api_models' schemas as components."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
    from pydantic.json_schema import models_json_schema

    from motionrelay.api.models import REQUEST_MODELS, RESPONSE_MODELS

    spec = app.get_openapi_schema(
        title=TITLE, version=API_VERSION, openapi_version=OPENAPI_VERSION, description=DESCRIPTION,
        security_schemes={SECURITY_SCHEME: HTTPBearer(bearerFormat="API key",
                                                       description="`motionrelay keys create` prints one.")},
        security=[{SECURITY_SCHEME: []}],
    )
    doc = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    # Requests as the API reads them, responses as it writes them.
    _, schemas = models_json_schema(
        [(m, "validation") for m in REQUEST_MODELS] + [(m, "serialization") for m in RESPONSE_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    # Replaces Powertools' HTTPValidationError/ValidationError: this API never answers with them.
    doc.setdefault("components", {})["schemas"] = dict(sorted(schemas["$defs"].items()))
    return doc


@cache
def document_json(app: Any) -> str:
    return json.dumps(document(app), separators=(",", ":"))


def openapi_response(app: Any) -> Response:
    return Response(status_code=200, content_type=JSON, body=document_json(app))


def swagger_response(app: Any) -> Response:
    """Swagger UI with the document inlined, and its JS and CSS too (the ones Powertools ships):
    the page needs nothing from a CDN. `?format=json` answers the document itself, as the
    page's own download link expects."""
    if (app.current_event.query_string_parameters or {}).get("format") == "json":
        return openapi_response(app)
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=swagger_html(app))


@cache
def swagger_html(app: Any) -> str:
    from pathlib import Path

    import aws_lambda_powertools.event_handler as event_handler
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    assets = Path(event_handler.__file__).parent / "openapi" / "swagger_ui"
    js = (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    css = (assets / "swagger-ui.min.css").read_text(encoding="utf-8")
    # "</" inside the inlined JSON would end the <script> element early.
    spec = document_json(app).replace("</", "<\\/")
    return generate_swagger_html(spec, js, css, "", None, persist_authorization=False)
