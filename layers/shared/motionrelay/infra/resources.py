"""The data resources' definitions, in one place.

template.yaml declares the same table, indexes, bucket rules and queues for AWS (a unit
test checks the two agree); the local stack and the tests create them from here, since
moto cannot run the SAM template.
"""

from __future__ import annotations

from typing import Any

DUE_INDEX = "due"  # sparse: only jobs that still need polling carry `due_shard`
TENANT_INDEX = "by_tenant"  # a tenant's jobs, newest first
INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"
INPUT_EXPIRY_DAYS = 2
TRANSFER_MAX_RECEIVES = 5
TRANSFER_FUNCTION_TIMEOUT = 300
# AWS advises a visibility timeout of at least 6x the consuming function's timeout.
TRANSFER_VISIBILITY_SECONDS = 6 * TRANSFER_FUNCTION_TIMEOUT

# Client notifications: after a failed attempt the notifier hides the message for the next
# step (+-20 % jitter; SQS allows at most 12 h), so attempts come ~30 s, 2 m, 10 m, 30 m,
# 1 h, 2 h, 4 h and 8 h apart; the receive after the last step's retry moves it to the DLQ.
NOTIFY_BACKOFF_SECONDS = (30, 120, 600, 1800, 3600, 7200, 14400, 28800)
NOTIFY_MAX_RECEIVES = len(NOTIFY_BACKOFF_SECONDS) + 1  # 9 attempts over ~16 h
NOTIFIER_FUNCTION_TIMEOUT = 60
NOTIFIER_BATCH_SIZE = 5
NOTIFY_VISIBILITY_SECONDS = 6 * NOTIFIER_FUNCTION_TIMEOUT
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600  # longer than the whole retry schedule
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum: time to look and redrive

# Attributes the poller needs, projected into the due index so a poll reads no base item.
DUE_PROJECTION = [
    "id", "phase", "provider", "provider_task_id", "deadline_at", "poll_count", "tenant_id",
    "submitted_at", "progress", "callback_expected",
]

JOBS_TABLE: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "due_shard", "AttributeType": "S"},
        {"AttributeName": "next_poll_at", "AttributeType": "N"},
        {"AttributeName": "tenant_id", "AttributeType": "S"},
        {"AttributeName": "created_at", "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": DUE_INDEX,
            "KeySchema": [
                {"AttributeName": "due_shard", "KeyType": "HASH"},
                {"AttributeName": "next_poll_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": DUE_PROJECTION},
        },
        {
            "IndexName": TENANT_INDEX,
            "KeySchema": [
                {"AttributeName": "tenant_id", "KeyType": "HASH"},
                {"AttributeName": "created_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
    "BillingMode": "PAY_PER_REQUEST",
}

# Powertools Idempotency's default layout: partition key `id`, TTL on `expiration`.
IDEMPOTENCY_TABLE: dict[str, Any] = {
    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "BillingMode": "PAY_PER_REQUEST",
}

BUCKET_LIFECYCLE: dict[str, Any] = {
    "Rules": [
        {
            "ID": "expire-staged-inputs",
            "Status": "Enabled",
            "Filter": {"Prefix": INPUT_PREFIX},
            "Expiration": {"Days": INPUT_EXPIRY_DAYS},
        },
        {
            "ID": "abort-incomplete-multipart",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]
}
