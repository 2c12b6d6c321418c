"""Tick function: every minute (EventBridge schedule), one SQS message per free due-index
shard, each starting a poll invocation of that shard (functions/poller)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from motionrelay import poller, wiring
from motionrelay.observability import logger, metrics, tracer

deps = wiring.build()  # once per execution environment


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return {"shards": poller.fan_out(store=deps.store, now=deps.clock)}
