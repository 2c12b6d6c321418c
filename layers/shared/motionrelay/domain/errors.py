"""Errors with stable codes. The API maps every `MotionRelayError` to the fixed JSON shape:
`{"error": {"code", "message", "field"?}}` with the error's HTTP status."""

from __future__ import annotations


class MotionRelayError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status:
            self.status = status

    def to_body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


class InvalidRequest(MotionRelayError):
    status = 400
    code = "invalid_request"


class Unauthorized(MotionRelayError):
    status = 401
    code = "unauthorized"


class NotFound(MotionRelayError):
    status = 404
    code = "not_found"


class Conflict(MotionRelayError):
    status = 409
    code = "conflict"


class UnsupportedMedia(MotionRelayError):
    status = 415
    code = "unsupported_media"


class InputTooLarge(MotionRelayError):
    status = 413
    code = "input_too_large"


class ForbiddenUrl(MotionRelayError):
    status = 422
    code = "forbidden_url"


class InputUnreachable(MotionRelayError):
    status = 422
    code = "input_unreachable"


class InputTooLong(MotionRelayError):
    status = 422
    code = "input_too_long"


class InputTooShort(MotionRelayError):
    status = 422
    code = "input_too_short"


class InputTooSmall(MotionRelayError):
    """Fewer pixels on a side than the model needs."""

    status = 422
    code = "input_too_small"


class BadAspectRatio(MotionRelayError):
    status = 422
    code = "bad_aspect_ratio"


class ProviderCannotServe(MotionRelayError):
    status = 422
    code = "provider_cannot_serve"


class ProviderUnavailable(MotionRelayError):
    status = 503
    code = "provider_unavailable"
