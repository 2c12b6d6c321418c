"""Webhook function: POST /v1/callbacks/{provider}/{job_id}. Verify, re-fetch, apply."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from motionrelay import wiring
from motionrelay.api.http import json_response, register_error_handlers, request_body
from motionrelay.callbacks import handle_callback
from motionrelay.observability import logger, metrics, tracer

deps = wiring.build()  # once per execution environment: the table, the clock, the registry
app = APIGatewayHttpResolver()
register_error_handlers(app)


@app.post("/v1/callbacks/<provider>/<job_id>")
@tracer.capture_method(capture_response=False)
def callback(provider: str, job_id: str):
    logger.append_keys(job_id=job_id, provider=provider)
    event = app.current_event
    result = handle_callback(provider, job_id, event.headers, request_body(event),
                             event.query_string_parameters or {}, store=deps.store,
                             now=deps.clock(), adapters=deps.adapters)
    return json_response(200, result)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
