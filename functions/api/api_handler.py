"""API function: jobs (create, get, list, cancel) and uploads. Parse, call the package, map errors."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from motionrelay.apikeys import Principal, authenticate
from motionrelay.http_api import callback_base, json_response, register_error_handlers
from motionrelay.idempotency import create_idempotently, register_lambda_context
from motionrelay.jobs import cancel_job, get_job, job_resource, list_jobs
from motionrelay.observability import logger, metrics, tracer
from motionrelay.submission import create_job
from motionrelay.uploads import create_upload, parse_upload_request
from motionrelay.validation import parse_job_request
from motionrelay.webhook_secrets import get_or_create as webhook_secret
from motionrelay.webhook_secrets import rotate as rotate_webhook_secret

app = APIGatewayHttpResolver()
register_error_handlers(app)


def _principal(job_id: str | None = None) -> Principal:
    """The caller's tenant from its API key; tenant (and job) go on every log line after."""
    principal = authenticate(app.current_event.headers.get("authorization"))
    logger.append_keys(tenant_id=principal.tenant_id, **({"job_id": job_id} if job_id else {}))
    return principal


@app.post("/v1/jobs")
@tracer.capture_method(capture_response=False)
def post_job():
    event = app.current_event
    principal = _principal()
    request = parse_job_request(event.decoded_body)
    created: list = []

    def create() -> str:
        created.append(create_job(principal, request, callback_base=callback_base(event)))
        return created[0].id

    key = event.headers.get("idempotency-key")
    if key is None:
        job_id = create()
    else:
        job_id = create_idempotently(principal.tenant_id, key, event.decoded_body, create)
    job = created[0] if created else get_job(principal, job_id)
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if key is not None:
        headers["Idempotent-Replayed"] = "false" if created else "true"
    return json_response(202, job_resource(job), headers=headers)


@app.get("/v1/jobs/<job_id>")
@tracer.capture_method(capture_response=False)
def read_job(job_id: str):
    return json_response(200, job_resource(get_job(_principal(job_id), job_id)))


@app.get("/v1/jobs")
@tracer.capture_method(capture_response=False)
def read_jobs():
    query = app.current_event.query_string_parameters or {}
    page = list_jobs(_principal(), status=query.get("status"), limit=query.get("limit"),
                     cursor=query.get("cursor"))
    return json_response(200, page)


@app.post("/v1/jobs/<job_id>/cancel")
@tracer.capture_method(capture_response=False)
def cancel(job_id: str):
    return json_response(200, job_resource(cancel_job(_principal(job_id), job_id)))


@app.post("/v1/uploads")
@tracer.capture_method(capture_response=False)
def post_upload():
    principal = _principal()
    content_type, size_bytes = parse_upload_request(app.current_event.decoded_body)
    return json_response(201, create_upload(principal, content_type, size_bytes))


@app.get("/v1/webhook-secret")
@tracer.capture_method(capture_response=False)
def read_webhook_secret():
    # Created on first use; the secret is the tenant's own, never cached by intermediaries.
    return json_response(200, webhook_secret(_principal().tenant_id).public(),
                         headers={"Cache-Control": "no-store"})


@app.post("/v1/webhook-secret/rotate")
@tracer.capture_method(capture_response=False)
def post_webhook_secret_rotation():
    return json_response(200, rotate_webhook_secret(_principal().tenant_id).public(),
                         headers={"Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    register_lambda_context(context)
    return app.resolve(event, context)
