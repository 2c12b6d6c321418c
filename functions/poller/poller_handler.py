"""Poller function: runs every minute (EventBridge schedule) over the jobs that are due."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from motionrelay import poller
from motionrelay.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    report = poller.run(context.get_remaining_time_in_millis)
    return report.__dict__
