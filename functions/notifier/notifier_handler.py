"""Notifier function: SQS messages `{"job_id", "webhook_id", "type"}` -> a signed POST of the
job to the client's webhook_url (motionrelay.notify). A failed attempt hides its message for
the next backoff step and is reported as a batch item failure; SQS's redrive policy moves it
to the DLQ after the last one."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from motionrelay import wiring
from motionrelay.notify import handle_message
from motionrelay.observability import logger, metrics, tracer

# A batch whose every message failed is still a partial response, not a function error:
# each message already carries its own retry delay, and errors would only page someone.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
deps = wiring.build()  # once per execution environment


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    return handle_message(record.body, receive_count=int(record.attributes.approximate_receive_count or 1),
                          receipt_handle=record.receipt_handle,
                          remaining_ms=getattr(lambda_context, "get_remaining_time_in_millis", None),
                          store=deps.store)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
