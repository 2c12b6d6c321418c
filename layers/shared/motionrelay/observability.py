"""One Logger, Metrics and Tracer per process, shared by the package and the handlers.

Importing this module also keeps URLs' query strings out of the HTTP libraries' logs: httpx
logs `HTTP Request: <method> <full URL>` at INFO, and those URLs carry presigned S3 signatures,
callback tokens and clients' webhook tokens. See `RedactQueryStrings`.
"""

from __future__ import annotations

import logging
import re

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "motionrelay"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="MotionRelay", service=SERVICE)
# auto_patch off: patching imports botocore/httpx at cold start; aws.client() patches lazily.
tracer = Tracer(service=SERVICE, auto_patch=False)


def count(name: str, provider: str | None = None, value: float = 1, unit: str = "Count") -> None:
    """A metric with a per-provider dimension (EMF, written at once, not at flush)."""
    from aws_lambda_powertools.metrics import single_metric

    with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="provider", value=provider or "none")



# --------------------------------------------------------------------------- third-party logs

# scheme://authority/path?query  ->  scheme://authority/path?<redacted>  (the query ends at
# whitespace, a quote, a bracket or a fragment).
_URL_QUERY = re.compile(r"""(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#"'<>]*)\?[^\s#"'<>]*""")
REDACTED_QUERY = "?<redacted>"
# The loggers httpx and httpcore log on (httpcore names one per module; a filter on a logger
# sees only records logged on that very logger, not its children's).
HTTP_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                "httpcore.proxy", "httpcore.socks")


def redact_query_strings(text: str) -> str:
    return _URL_QUERY.sub(lambda m: m.group("url") + REDACTED_QUERY, text)


class RedactQueryStrings(logging.Filter):
    """Rewrites every URL's query string in a record to `?<redacted>`. It works on the
    formatted message (httpx passes the URL as an `httpx.URL` argument, not a string), so the
    record leaves with `msg` redacted and no `args`. It runs for every record its logger
    emits: the levels set below are a second line, not what keeps a secret out."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: redact what there is
            message = f"{record.msg} {record.args}"
        redacted = redact_query_strings(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = redact_query_strings(record.exc_text)
        return True


# The AWS SDK at DEBUG logs whole request and response bodies (webhook secrets read from
# DynamoDB, for one), which no filter can redact reliably: pinned to WARNING, so a root logger
# at DEBUG (ApplicationLogLevel=DEBUG) does not turn them on. Enable them only on purpose.
SDK_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3")


def _install_http_log_redaction() -> None:
    """Once per process (a re-import finds the filter already there)."""
    for name in HTTP_LOGGERS:
        http_logger = logging.getLogger(name)
        if not any(type(f).__name__ == RedactQueryStrings.__name__ for f in http_logger.filters):
            http_logger.addFilter(RedactQueryStrings())
        http_logger.setLevel(logging.WARNING)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


_install_http_log_redaction()
