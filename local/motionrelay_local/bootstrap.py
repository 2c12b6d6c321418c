"""Creating the data resources outside AWS, from their definitions in
`motionrelay.infra.resources`: the unit tests and benchmarks use it against moto. (The local
stack provisions from template.yaml itself: `provision.py`.) Not shipped in the Lambda layer."""

from __future__ import annotations

from motionrelay.infra.resources import (
    BUCKET_LIFECYCLE,
    DLQ_RETENTION_SECONDS,
    IDEMPOTENCY_TABLE,
    JOBS_TABLE,
    NOTIFY_MAX_RECEIVES,
    NOTIFY_VISIBILITY_SECONDS,
    QUEUE_RETENTION_SECONDS,
    TRANSFER_MAX_RECEIVES,
    TRANSFER_VISIBILITY_SECONDS,
)


def create_all(table_name: str, bucket_name: str, transfer_queue_name: str,
               notify_queue_name: str | None = None) -> dict[str, str]:
    """Create the table, bucket and queues (local stack and tests). Returns the queue URLs:
    `<name>_queue_url` and `<name>_dlq_url` for `transfer` and `notify`."""
    from motionrelay.infra.aws import client

    ddb = client("dynamodb")
    ddb.create_table(TableName=table_name, **JOBS_TABLE)
    ddb.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    ddb.create_table(TableName=f"{table_name}-idempotency", **IDEMPOTENCY_TABLE)
    ddb.update_time_to_live(
        TableName=f"{table_name}-idempotency",
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )

    s3 = client("s3")
    s3.create_bucket(Bucket=bucket_name)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket_name, LifecycleConfiguration=BUCKET_LIFECYCLE)

    if notify_queue_name is None:  # "<prefix>transfer" -> "<prefix>notify"
        stem = transfer_queue_name.removesuffix("transfer")
        notify_queue_name = f"{stem}notify" if stem != transfer_queue_name else f"{stem}-notify"
    transfer_url, transfer_dlq = _queue_with_dlq(transfer_queue_name, TRANSFER_VISIBILITY_SECONDS,
                                                 TRANSFER_MAX_RECEIVES)
    notify_url, notify_dlq = _queue_with_dlq(notify_queue_name, NOTIFY_VISIBILITY_SECONDS,
                                             NOTIFY_MAX_RECEIVES)
    return {"transfer_queue_url": transfer_url, "transfer_dlq_url": transfer_dlq,
            "notify_queue_url": notify_url, "notify_dlq_url": notify_dlq}


def _queue_with_dlq(name: str, visibility_seconds: int, max_receives: int) -> tuple[str, str]:
    import json

    from motionrelay.infra.aws import client

    sqs = client("sqs")
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_seconds),
            "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}),
        },
    )["QueueUrl"]
    return queue_url, dlq_url
