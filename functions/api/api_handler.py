"""API function: jobs (create, get, list, cancel), uploads, webhook secret, and the API's own
OpenAPI document and Swagger UI. Parse, call the package, map errors."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from motionrelay import wiring
from motionrelay.api import console
from motionrelay.api.http import (
    callback_base,
    error_response,
    json_response,
    register_error_handlers,
    request_body,
)
from motionrelay.api.openapi import header, openapi_response, operation, query, swagger_response
from motionrelay.apikeys import Principal, authenticate
from motionrelay.catalog import available_providers
from motionrelay.infra.idempotency import body_sha256, create_idempotently, register_lambda_context
from motionrelay.jobs import DEFAULT_PAGE, MAX_PAGE, STATUSES, cancel_job, get_job, job_resource, list_jobs
from motionrelay.observability import logger, metrics, tracer
from motionrelay.submission import create_job, idempotent_job_id
from motionrelay.uploads import create_upload, parse_upload_request
from motionrelay.validation import parse_job_request
from motionrelay.webhook_secrets import get_or_create as webhook_secret
from motionrelay.webhook_secrets import rotate as rotate_webhook_secret

# No enable_validation: request bodies are parsed by motionrelay.validation (stable error codes,
# no pydantic at cold start); the pydantic models document them (motionrelay.api.openapi).
deps = wiring.build()  # once per execution environment: the table, the clock, the registry
app = APIGatewayHttpResolver()
register_error_handlers(app)

IDEMPOTENCY_KEY = header("Idempotency-Key", "Makes the create safe to retry: the same key and body "
                         "return the same job (`Idempotent-Replayed: true`) for 24 h; another body is 409.",
                         {"type": "string", "minLength": 1, "maxLength": 255})


def _principal(job_id: str | None = None) -> Principal:
    """The caller's tenant from its API key; tenant (and job) go on every log line after."""
    principal = authenticate(app.current_event.headers.get("authorization"), store=deps.store)
    logger.append_keys(tenant_id=principal.tenant_id, **({"job_id": job_id} if job_id else {}))
    return principal


@app.post("/v1/jobs", **operation(
    "createJob", "Create a job", tag="jobs", body="JobCreate", parameters=[IDEMPOTENCY_KEY],
    ok=(202, "Job", "Accepted: the job, usually queued (failed at once if every provider refused it)."),
    ok_headers={"Location": "The job's URL.", "Idempotent-Replayed": "With Idempotency-Key: whether this "
                "answer replays an earlier request's job."},
    errors=(400, 401, 409, 413, 415, 422)))
@tracer.capture_method(capture_response=False)
def post_job():
    event = app.current_event
    principal = _principal()
    body = request_body(event)
    request = parse_job_request(body)
    created: list = []
    key = event.headers.get("idempotency-key")

    def create() -> str:
        # The time this invocation has left bounds staging and placement; an Idempotency-Key
        # also fixes the job id, so a retry after any crash finds the job it made.
        created.append(create_job(
            principal, request, callback_base=callback_base(event),
            remaining_ms=getattr(app.lambda_context, "get_remaining_time_in_millis", None),
            job_id=None if key is None else idempotent_job_id(principal.tenant_id, key),
            body_sha256=None if key is None else body_sha256(body), store=deps.store, now=deps.clock))
        return created[0].id

    if key is None:
        job_id = create()
    else:
        job_id = create_idempotently(principal.tenant_id, key, body, create)
    job = created[0] if created else get_job(principal, job_id, deps.store)
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if key is not None:
        headers["Idempotent-Replayed"] = "false" if created else "true"
    return json_response(202, job_resource(job), headers=headers)


@app.get("/v1/jobs/<job_id>", **operation("getJob", "Get a job", tag="jobs", ok=(200, "Job", "The job."),
                                           errors=(401, 404)))
@tracer.capture_method(capture_response=False)
def read_job(job_id: str):
    return json_response(200, job_resource(get_job(_principal(job_id), job_id, deps.store)))


@app.get("/v1/jobs", **operation(
    "listJobs", "List jobs, newest first", tag="jobs", ok=(200, "JobPage", "One page of this key's jobs."),
    errors=(400, 401), parameters=[
        query("status", "Only jobs in this status.",
              {"type": "string", "enum": list(STATUSES)}),
        query("limit", "Page size.",
              {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}),
        query("cursor", "`next_cursor` of the previous page.", {"type": "string"}),
    ]))
@tracer.capture_method(capture_response=False)
def read_jobs():
    query = app.current_event.query_string_parameters or {}
    page = list_jobs(_principal(), status=query.get("status"), limit=query.get("limit"),
                     cursor=query.get("cursor"), store=deps.store)
    return json_response(200, page)


@app.post("/v1/jobs/<job_id>/cancel", **operation(
    "cancelJob", "Cancel a job", tag="jobs", ok=(200, "Job", "The job, now canceled."),
    errors=(401, 404, 409)))
@tracer.capture_method(capture_response=False)
def cancel(job_id: str):
    return json_response(200, job_resource(cancel_job(_principal(job_id), job_id, deps.store)))


@app.post("/v1/uploads", **operation(
    "createUpload", "Upload a large input", tag="uploads", body="UploadCreate",
    ok=(201, "Upload", "A presigned PUT for the file, and the `upload:<id>` to use in a job."),
    errors=(400, 401, 413, 415)))
@tracer.capture_method(capture_response=False)
def post_upload():
    principal = _principal()
    content_type, size_bytes = parse_upload_request(request_body(app.current_event))
    return json_response(201, create_upload(principal, content_type, size_bytes, store=deps.store))


@app.get("/v1/webhook-secret", **operation(
    "getWebhookSecret", "Get the webhook signing secret", tag="webhooks",
    ok=(200, "WebhookSecret", "This tenant's secret (created on first use)."), errors=(401,)))
@tracer.capture_method(capture_response=False)
def read_webhook_secret():
    # Created on first use; the secret is the tenant's own, never cached by intermediaries.
    return json_response(200, webhook_secret(_principal().tenant_id, deps.store).public(),
                         headers={"Cache-Control": "no-store"})


@app.post("/v1/webhook-secret/rotate", **operation(
    "rotateWebhookSecret", "Rotate the webhook signing secret", tag="webhooks",
    ok=(200, "WebhookSecret", "The new secret; the previous one keeps signing for 24 h."),
    errors=(401, 409)))
@tracer.capture_method(capture_response=False)
def post_webhook_secret_rotation():
    return json_response(200, rotate_webhook_secret(_principal().tenant_id, store=deps.store).public(),
                         headers={"Cache-Control": "no-store"})


@app.get("/v1/providers", **operation(
    "listProviders", "List the providers this deployment can serve", tag="providers",
    ok=(200, "ProviderList", "The providers a job's `provider` may name (routed, with credentials), in "
        "routing order, with what each can do."), errors=(401,)))
@tracer.capture_method(capture_response=False)
def read_providers():
    _principal()
    return json_response(200, available_providers())


# Public, like the document they describe; built on first request (pydantic stays off the cold start).
@app.get("/v1/openapi.json", include_in_schema=False)
def read_openapi():
    return openapi_response(app)


@app.get("/v1/docs", include_in_schema=False, compress=True)
def read_docs():
    return swagger_response(app)


# The web console: a public page (the user types the API key into it) and its static assets.
@app.get("/console", include_in_schema=False)
def read_console():
    return console.index_response()


@app.get("/console/<asset>", include_in_schema=False)
def read_console_asset(asset: str):
    return console.asset_response(asset) or error_response(404, "not_found", f"No console asset '{asset}'.")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    register_lambda_context(context)
    return app.resolve(event, context)
