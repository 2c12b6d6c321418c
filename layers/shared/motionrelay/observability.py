"""One Logger, Metrics and Tracer per process, shared by the package and the handlers."""

from __future__ import annotations

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

