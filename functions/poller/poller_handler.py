"""Poller function: polls one shard of the due index per shard-fan-out message (SQS, one
message per invocation), or every shard when invoked directly (a scheduled event)."""

import json

from aws_lambda_powertools.utilities.typing import LambdaContext

from motionrelay import poller, wiring
from motionrelay.observability import logger, metrics, tracer

deps = wiring.build()  # once per execution environment: the table, the clock, the registry


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records")
    if not records:
        return poller.run(context.get_remaining_time_in_millis, store=deps.store, now=deps.clock).__dict__
    results = [poller.run_shard(json.loads(record["body"]), context.get_remaining_time_in_millis,
                                store=deps.store, now=deps.clock)
               for record in records]
    for result in results:
        if result["outcome"] != "polled":
            logger.info("shard message dropped", extra=result)
    return {"shards": results}
