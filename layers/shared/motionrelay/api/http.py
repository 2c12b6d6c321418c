"""What the API and webhook handlers share: error mapping in one place, JSON responses."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from motionrelay.domain.errors import MotionRelayError
from motionrelay.observability import logger


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps(body, separators=(",", ":")), headers=headers or {})


def request_body(event: Any) -> bytes:
    """The request body's bytes as the client sent them. Not Powertools' `decoded_body`: that
    decodes a base64 body (API Gateway's form for non-text content) as UTF-8 and raises on any
    other bytes, a 500 for what is only a malformed request (found by schemathesis)."""
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body)
        except (binascii.Error, ValueError):
            return b""  # API Gateway always sends valid base64; anything else reads as no body
    return body.encode("utf-8", "surrogatepass")


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return json_response(status, {"error": error})


def register_error_handlers(app: Any) -> None:
    """Every failure leaves as the fixed JSON error shape with a stable code."""

    @app.exception_handler(MotionRelayError)
    def _known(exc: MotionRelayError) -> Response:
        logger.info("request refused", extra={"code": exc.code, "status": exc.status, "field": exc.field})
        return json_response(exc.status, exc.to_body())

    @app.not_found
    def _not_found(_exc: Exception) -> Response:
        return error_response(404, "not_found", "No such route.")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side; try again.")


def callback_base(event: Any) -> str:
    """The URL providers call back: MOTIONRELAY_PUBLIC_URL, else this API's own domain
    (the template cannot pass the API's URL to its own functions without a cycle)."""
    from motionrelay.settings import get_settings

    configured = get_settings().public_url
    if configured:
        return configured
    return f"https://{event.request_context.domain_name}"
