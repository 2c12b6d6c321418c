"""Transfer function: SQS messages `{"job_id"}` -> copy the provider's video into S3."""

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from motionrelay import wiring
from motionrelay.observability import logger, metrics, tracer
from motionrelay.transfer import TransferRetry, hide_message, transfer_job

deps = wiring.build()  # once per execution environment
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    job_id = json.loads(record.body)["job_id"]
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    try:
        outcome = transfer_job(job_id, store=deps.store, remaining_ms=remaining)
    except TransferRetry as exc:  # the message is retried: at once, or when `delay` has passed
        if exc.delay:
            hide_message(record.receipt_handle, exc.delay)
        raise
    logger.info("transfer handled", extra={"job_id": job_id, "outcome": outcome})
    return outcome


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
