"""API keys: random, shown once, stored only as SHA-256 hashes.

A key carries ~190 bits of randomness, so a plain SHA-256 is not brute-forceable and a
lookup by hash needs no secret comparison at all: the attacker-controlled value never meets
a stored secret in a byte-by-byte compare.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from motionrelay.errors import Unauthorized
from motionrelay.store import JobStore

KEY_PREFIX = "mr_"


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    key_name: str


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def put_key(raw_key: str, tenant_id: str, name: str, store: JobStore | None = None) -> None:
    (store or JobStore()).put_api_key(hash_key(raw_key), tenant_id, name)


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
    return Principal(tenant_id=record["tenant_id_owner"], key_name=record.get("name", ""))
