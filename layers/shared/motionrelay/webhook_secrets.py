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
from motionrelay.infra.jobs_table import JobStore

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
GRACE_SECONDS = 24 * 3600
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


def _from_item(data: dict[str, Any]) -> WebhookSecret:
    until = data.get("previous_until")
    return WebhookSecret(secret=data["secret"], created_at=data["secret_created_at"],
                         previous=data.get("previous_secret"),
                         previous_until=int(until) if until is not None else None)


def read(tenant_id: str, store: JobStore | None = None) -> WebhookSecret | None:
    item = (store or JobStore()).webhook_secret(tenant_id)
    return _from_item(item) if item else None


def _create(tenant_id: str, store: JobStore | None = None) -> WebhookSecret | None:
    """A first secret; None when another writer created one first (read that one)."""
    created = WebhookSecret(secret=new_secret(), created_at=iso(datetime.now(UTC)))
    if not (store or JobStore()).create_webhook_secret(tenant_id, created.secret, created.created_at):
        return None
    return created


def get_or_create(tenant_id: str, store: JobStore | None = None) -> WebhookSecret:
    """The tenant's secret, created on first use. Two first uses racing end up with the same
    secret: the conditional put lets only one of them create it."""
    store = store or JobStore()
    existing = read(tenant_id, store)
    if existing is not None:
        return existing
    created = _create(tenant_id, store)
    if created is not None:
        return created
    raced = read(tenant_id, store)
    if raced is None:  # pragma: no cover - created and deleted in between: nothing deletes it
        raise Conflict("The webhook secret changed while it was read; try again.", code="secret_conflict")
    return raced


def rotate(tenant_id: str, now: float | None = None, store: JobStore | None = None) -> WebhookSecret:
    """Replace the secret; the replaced one keeps signing for GRACE_SECONDS. The write is
    conditional on the secret it replaces, so two concurrent rotations cannot lose one."""
    store = store or JobStore()
    for _ in range(_ROTATE_TRIES):
        current = read(tenant_id, store)
        if current is None:
            created = _create(tenant_id, store)  # nothing to roll over from
            if created is not None:
                return created
            continue
        at = now or time.time()
        rotated = WebhookSecret(secret=new_secret(), created_at=iso(datetime.fromtimestamp(at, UTC)),
                                previous=current.secret, previous_until=int(at) + GRACE_SECONDS)
        if store.replace_webhook_secret(tenant_id, old=current.secret, new=rotated.secret,
                                        created_at=rotated.created_at,
                                        previous_until=int(rotated.previous_until or 0)):
            return rotated
        # rotated by someone else meanwhile: read again
    raise Conflict("The webhook secret is being rotated by another request; try again.",
                   code="rotation_in_progress")


def sign(secrets_: list[str], msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: one `v1,<base64>` per secret, space-separated (the
    Standard Webhooks way to carry several signatures during a rotation)."""
    from standardwebhooks import Webhook  # lazy: only the notifier signs

    at = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(s).sign(msg_id=msg_id, timestamp=at, data=body) for s in secrets_)
