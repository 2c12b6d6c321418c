"""API keys: random, shown once, stored only as SHA-256 hashes; each belongs to a tenant.

A key carries ~190 bits of randomness, so a plain SHA-256 is not brute-forceable and a
lookup by hash needs no secret comparison at all: the attacker-controlled value never meets
a stored secret in a byte-by-byte compare.

Revocation is immediate: `authenticate` reads the key's item with a strongly consistent
GetItem on every request and nothing caches the answer, so the first request after
`revoke_key` returns is already refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass

from motionrelay.domain.errors import InvalidRequest, NotFound, Unauthorized
from motionrelay.domain.job import iso, utc_now
from motionrelay.infra.jobs_table import JobStore

KEY_PREFIX = "mr_"
# Shown in listings so a person can tell keys apart; 6 of ~32 random characters give nothing away.
DISPLAY_PREFIX_CHARS = len(KEY_PREFIX) + 6
MAX_NAME_CHARS = 100
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEY_ID = re.compile(r"^key_[0-9a-f]{12}$")


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    key_name: str
    key_id: str = ""


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key: never the key, nor its hash."""

    key_id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return bool(self.revoked_at)

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> ApiKeyInfo:
        return cls(key_id=record["key_id"], tenant_id=record["tenant_id_owner"], name=record.get("name", ""),
                   prefix=record.get("key_prefix", ""), created_at=record.get("created_at", ""),
                   revoked_at=record.get("revoked_at") or None)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def validate_tenant(tenant_id: str) -> str:
    if not isinstance(tenant_id, str) or not _TENANT.match(tenant_id):
        raise InvalidRequest("A tenant id is 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                             "or digit.", field="tenant")
    return tenant_id


def put_key(raw_key: str, tenant_id: str, name: str, store: JobStore | None = None) -> ApiKeyInfo:
    """Store `raw_key` (as its hash) for `tenant_id`. The local stack seeds its dev key with this."""
    validate_tenant(tenant_id)
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequest(f"A key name is at most {MAX_NAME_CHARS} characters.", field="name")
    record = (store or JobStore()).put_api_key(hash_key(raw_key), tenant_id, name,
                                              prefix=raw_key[:DISPLAY_PREFIX_CHARS])
    return ApiKeyInfo.from_record(record)


def create_key(tenant_id: str, name: str = "", store: JobStore | None = None) -> tuple[str, ApiKeyInfo]:
    """A new random key for `tenant_id`: (the key, to show once; what is stored about it)."""
    raw_key = new_key()
    return raw_key, put_key(raw_key, tenant_id, name, store)


def list_keys(tenant_id: str | None = None, store: JobStore | None = None) -> list[ApiKeyInfo]:
    """Every key, or one tenant's, oldest first."""
    if tenant_id is not None:
        validate_tenant(tenant_id)
    records = (store or JobStore()).list_api_keys(tenant_id)
    return sorted((ApiKeyInfo.from_record(r) for r in records), key=lambda k: (k.created_at, k.key_id))


def revoke_key(key_id: str, store: JobStore | None = None) -> tuple[ApiKeyInfo, bool]:
    """Revoke a key by id, at once. Returns (the key, False if it had been revoked already)."""
    record, revoked_now = None, False
    if _KEY_ID.match(key_id or ""):
        record, revoked_now = (store or JobStore()).revoke_api_key(key_id, iso(utc_now()))
    if record is None:
        raise NotFound(f"No API key with id '{key_id}'.", field="key_id")
    return ApiKeyInfo.from_record(record), revoked_now


def authenticate(authorization: str | None, store: JobStore | None = None) -> Principal:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
    if len(token) > 200:
        raise Unauthorized("The API key is not valid.")
    record = (store or JobStore()).get_api_key(hash_key(token))
    if not record or record.get("revoked_at"):
        raise Unauthorized("The API key is not valid or has been revoked.")
    return Principal(tenant_id=record["tenant_id_owner"], key_name=record.get("name", ""),
                     key_id=record.get("key_id", ""))
