"""The SQS queues: transfers to run, notifications to deliver, and hiding a message until
its retry (Lambda's event source mapping leaves a reported failure's visibility as it is)."""

from __future__ import annotations

import json

from motionrelay.infra.aws import client
from motionrelay.observability import logger
from motionrelay.settings import get_settings


def enqueue_transfer(job_id: str) -> None:
    client("sqs").send_message(QueueUrl=get_settings().transfer_queue_url,
                               MessageBody=json.dumps({"job_id": job_id}))


def enqueue_notification(queue_url: str, body: dict) -> None:
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))


def send_batch(queue_url: str, bodies: list[dict]) -> None:
    """Send `bodies` in SendMessageBatch calls of 10 (SQS's most); raises if any entry failed."""
    sqs = client("sqs")
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps(body)}
                   for i, body in enumerate(bodies[start:start + 10])]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed") or []
        if failed:
            raise RuntimeError(f"SQS refused {len(failed)} of {len(entries)} messages: {failed[0]}")


def hide(queue_url: str, receipt_handle: str, delay: int, *, what: str) -> None:
    """Keep a message invisible for `delay` seconds; best effort (it then comes back after
    the queue's own visibility timeout)."""
    try:
        client("sqs").change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle,
                                                VisibilityTimeout=delay)
    except Exception:  # noqa: BLE001 - best effort, see above
        logger.warning(f"could not delay a {what} retry", exc_info=True)
