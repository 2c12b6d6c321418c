"""Per-tenant Standard Webhooks signing secrets (`whsec_...`), kept in the jobs table.

One item per tenant: pk `TENANT#<tenant_id>`, sk `WEBHOOK_SECRET`. It is created on first use
(the tenant reading it, or the first notification to sign) and rotated by the tenant. After a
rotation the replaced secret stays valid for GRACE_SECONDS: notifications then carry two
signatures, so a receiver can switch secrets without dropping a single delivery. A second
rotation within the grace period ends the first old secret's grace at once (only one
previous secret is kept).

The secret must be shown to its tenant again, so it is stored as is (the table is encrypted
at rest, and only the API and the notifier read it), never hashed, and never logged.
Attribute names avoid `tenant_id`/`created_at`, the keys of the `by_tenant` index: the item
must not show up in a tenant's job listing.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from motionrelay.domain.errors import Conflict
from motionrelay.domain.job import iso
from motionrelay.infra.aws import client
from motionrelay.infra.jobs_table import from_ddb, to_ddb
from motionrelay.settings import get_settings

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
GRACE_SECONDS = 24 * 3600
SECRET_SK = "WEBHOOK_SECRET"  # noqa: S105 - a sort key
_ROTATE_TRIES = 3


@dataclass(frozen=True)
class WebhookSecret:
    secret: str
    created_at: str
    previous: str | None = None
    previous_until: int | None = None  # epoch seconds; the previous secret signs until then

    def previous_active(self, now: float | None = None) -> bool:
        return bool(self.previous and self.previous_until and self.previous_until > (now or time.time()))

    def signing_secrets(self, now: float | None = None) -> list[str]:
        """The secrets a notification is signed with right now: the current one, plus the
        previous one during its grace period."""
        return [self.secret, *([self.previous] if self.previous_active(now) else [])]

    def public(self, now: float | None = None) -> dict[str, Any]:
        """The API's view: `{secret, created_at, previous_expires_at?}`."""
        body: dict[str, Any] = {"secret": self.secret, "created_at": self.created_at}
        if self.previous_active(now):
            body["previous_expires_at"] = iso(datetime.fromtimestamp(self.previous_until or 0, UTC))
        return body


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(tenant_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": SECRET_SK}}


def _table() -> str:
    return get_settings().table_name


def _from_item(item: dict[str, Any]) -> WebhookSecret:
    data = from_ddb(item)
    until = data.get("previous_until")
    return WebhookSecret(secret=data["secret"], created_at=data["secret_created_at"],
                         previous=data.get("previous_secret"),
                         previous_until=int(until) if until is not None else None)


def read(tenant_id: str) -> WebhookSecret | None:
    item = client("dynamodb").get_item(TableName=_table(), Key=_key(tenant_id),
                                       ConsistentRead=True).get("Item")
    return _from_item(item) if item else None


def _create(tenant_id: str) -> WebhookSecret | None:
    """A first secret; None when another writer created one first (read that one)."""
    ddb = client("dynamodb")
    created = WebhookSecret(secret=new_secret(), created_at=iso(datetime.now(UTC)))
    item = {**_key(tenant_id), "tenant_owner": to_ddb(tenant_id), "secret": to_ddb(created.secret),
            "secret_created_at": to_ddb(created.created_at)}
    try:
        ddb.put_item(TableName=_table(), Item=item, ConditionExpression="attribute_not_exists(pk)")
    except ddb.exceptions.ConditionalCheckFailedException:
        return None
    return created


def get_or_create(tenant_id: str) -> WebhookSecret:
    """The tenant's secret, created on first use. Two first uses racing end up with the same
    secret: the conditional put lets only one of them create it."""
    existing = read(tenant_id)
    if existing is not None:
        return existing
    created = _create(tenant_id)
    if created is not None:
        return created
    raced = read(tenant_id)
    if raced is None:  # pragma: no cover - created and deleted in between: nothing deletes it
        raise Conflict("The webhook secret changed while it was read; try again.", code="secret_conflict")
    return raced


def rotate(tenant_id: str, now: float | None = None) -> WebhookSecret:
    """Replace the secret; the replaced one keeps signing for GRACE_SECONDS. The write is
    conditional on the secret it replaces, so two concurrent rotations cannot lose one."""
    ddb = client("dynamodb")
    for _ in range(_ROTATE_TRIES):
        current = read(tenant_id)
        if current is None:
            created = _create(tenant_id)  # nothing to roll over from
            if created is not None:
                return created
            continue
        at = now or time.time()
        rotated = WebhookSecret(secret=new_secret(), created_at=iso(datetime.fromtimestamp(at, UTC)),
                                previous=current.secret, previous_until=int(at) + GRACE_SECONDS)
        try:
            ddb.update_item(
                TableName=_table(), Key=_key(tenant_id),
                UpdateExpression="SET secret = :new, secret_created_at = :at, previous_secret = :old, "
                                 "previous_until = :until",
                ConditionExpression="secret = :old",
                ExpressionAttributeValues={
                    ":new": to_ddb(rotated.secret), ":at": to_ddb(rotated.created_at),
                    ":old": to_ddb(current.secret), ":until": to_ddb(rotated.previous_until),
                },
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            continue  # rotated by someone else meanwhile: read again
        return rotated
    raise Conflict("The webhook secret is being rotated by another request; try again.",
                   code="rotation_in_progress")


def sign(secrets_: list[str], msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: one `v1,<base64>` per secret, space-separated (the
    Standard Webhooks way to carry several signatures during a rotation)."""
    from standardwebhooks import Webhook  # lazy: only the notifier signs

    at = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(s).sign(msg_id=msg_id, timestamp=at, data=body) for s in secrets_)
