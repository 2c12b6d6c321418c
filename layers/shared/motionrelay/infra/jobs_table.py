"""DynamoDB data access for the one table (see resources.py): jobs, API keys, provider
cooldowns, upload records and tenants' webhook secrets. Nothing else calls DynamoDB on it.

Every state change is one conditional UpdateItem naming the phases it may start from, so
two writers racing (callback vs poller, duplicated callbacks, overlapping pollers) cannot
move a job backwards or apply a terminal state twice: the loser's condition fails.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from motionrelay.domain.job import Job, Phase, iso, utc_now
from motionrelay.domain.transitions import Change, Guard
from motionrelay.domain.upload import Upload
from motionrelay.infra.aws import client
from motionrelay.infra.resources import DUE_INDEX, TENANT_INDEX
from motionrelay.settings import get_settings

JOB_SK = "JOB"
KEY_SK = "APIKEY"
UPLOAD_SK = "UPLOAD"
SECRET_SK = "WEBHOOK_SECRET"  # noqa: S105 - a sort key
SHARD_LEASE_PREFIX = "POLLER#"
SHARD_LEASE_SK = "LEASE"


def _serializer():
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def to_ddb(value: Any) -> dict:
    from decimal import Decimal

    def convert(v: Any) -> Any:
        if isinstance(v, float):
            return Decimal(str(v))
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        return v

    return _serializer()[0].serialize(convert(value))


def from_ddb(item: dict) -> dict:
    deserializer = _serializer()[1]
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def job_key(job_id: str) -> dict:
    return {"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": JOB_SK}}


OWED_PREFIX = "owed#"


def is_job_id(value: str) -> bool:
    """Ids are minted as `job_<hex>`; anything else cannot be a job and is not looked up."""
    return value.startswith("job_") and len(value) < 64


class ConditionFailed(Exception):
    """The job was not in a phase the write may start from (a lost race, or a late event)."""


class JobStore:
    def __init__(self, table_name: str | None = None, ddb: Any = None, shards: int | None = None) -> None:
        # Unset names are read from the settings when first used, not here: a handler builds
        # its store at import, and nothing may be read before the environment is final.
        self._table = table_name
        self._shard_count = shards
        self._ddb = ddb  # an explicit client (the keys CLI targets a stack chosen by flags)

    @property
    def table(self) -> str:
        return self._table or get_settings().table_name

    @property
    def shards(self) -> int:
        return self._shard_count or get_settings().due_shards

    @property
    def ddb(self):
        return self._ddb if self._ddb is not None else client("dynamodb")

    # --- jobs ---------------------------------------------------------------------------
    def create(self, change: Change) -> Job:
        """The `created` event: a put that fails (ConditionFailed) when the job exists."""
        item = {**change.sets(), **self.poll_at(change.values["id"], float(change.due_at or 0))}
        item = {"pk": f"JOB#{item['id']}", "sk": JOB_SK, **item}
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={k: to_ddb(v) for k, v in item.items() if v is not None},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException as exc:
            raise ConditionFailed(item["id"]) from exc
        return Job.from_item(item)

    def get(self, job_id: str, consistent: bool = True) -> Job | None:
        if not is_job_id(job_id):
            return None
        response = self.ddb.get_item(TableName=self.table, Key=job_key(job_id), ConsistentRead=consistent)
        item = response.get("Item")
        return Job.from_item(from_ddb(item)) if item else None

    def write(self, job_id: str, change: Change) -> Job | None:
        """One conditional write of a `Change` (domain/transitions.py). Returns the job as
        written (None for the lean bookkeeping writes that return nothing); raises
        ConditionFailed when its condition does not hold: nothing changed."""
        event = change.event
        names: dict[str, str] = {"#phase": "phase"}
        values: dict[str, Any] = {}
        sets: list[str] = []
        assigned = change.sets()
        if event.touches:
            assigned.setdefault("updated_at", iso(utc_now()))
        if event.due == "due" and change.due_at is not None:
            assigned.update(self.poll_at(job_id, change.due_at))
        elif event.due == "owed":
            assigned.update(self.owed_at(job_id, float(change.due_at or 0)))
        for i, (attr, value) in enumerate(assigned.items()):
            names[f"#s{i}"] = attr
            values[f":s{i}"] = to_ddb(value)
            sets.append(f"#s{i} = :s{i}")
        for i, (attr, items) in enumerate(change.append.items()):
            names[f"#a{i}"] = attr
            values[f":a{i}"] = to_ddb(list(items))
            values[":empty"] = {"L": []}
            sets.append(f"#a{i} = list_append(if_not_exists(#a{i}, :empty), :a{i})")
        removed = list(event.removes) + (["due_shard", "next_poll_at"] if event.due == "leave" else [])
        for i, attr in enumerate(removed):
            names[f"#r{i}"] = attr
        adds = []
        for i, (attr, items) in enumerate(change.add.items()):
            names[f"#d{i}"] = attr
            values[f":d{i}"] = {"SS": sorted(set(items))}
            adds.append(f"#d{i} :d{i}")
        expression = " ".join(part for part in (
            "SET " + ", ".join(sets) if sets else "",
            "ADD " + ", ".join(adds) if adds else "",
            "REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed))) if removed else "",
        ) if part)
        phases = sorted(p.value for p in event.from_phases or ())
        values.update({f":p{i}": {"S": v} for i, v in enumerate(phases)})
        condition = f"attribute_exists(pk) AND #phase IN ({', '.join(f':p{i}' for i in range(len(phases)))})"
        guard = self._guard(change, names, values)
        if guard:
            condition += f" AND ({guard})"
        lean = not event.touches and event.to is None
        try:
            response = self.ddb.update_item(
                TableName=self.table, Key=job_key(job_id), UpdateExpression=expression,
                ConditionExpression=condition, ExpressionAttributeNames=names,
                ExpressionAttributeValues=values, ReturnValues="NONE" if lean else "ALL_NEW",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException as exc:
            raise ConditionFailed(job_id) from exc
        return None if lean else Job.from_item(from_ddb(response["Attributes"]))

    @staticmethod
    def _guard(change: Change, names: dict[str, str], values: dict[str, Any]) -> str:
        event = change.event
        if event.guard_attr:
            names["#g"] = event.guard_attr
        match event.guard:
            case Guard.LEASE_FREE | Guard.HIGHER:
                values[":g"] = to_ddb(round(change.guard_value, 3) if isinstance(change.guard_value, float)
                                      else change.guard_value)
                return "attribute_not_exists(#g) OR #g < :g"
            case Guard.HELD_BY:
                values[":g"] = to_ddb(change.guard_value)
                return "#g = :g"
            case Guard.OWED:
                values[":owed"] = {"S": OWED_PREFIX}
                return "begins_with(due_shard, :owed)"
            case Guard.NOT_DELIVERED_AND_LEASE_FREE:
                webhook_id, now = change.guard_value
                names["#done"] = "notified_ids"
                values.update({":id": {"S": webhook_id}, ":g": to_ddb(now)})
                return "NOT contains(#done, :id) AND (attribute_not_exists(#g) OR #g < :g)"
        return ""

    def due_shard(self, job_id: str) -> str:
        digest = hashlib.sha256(job_id.encode()).digest()
        return f"due#{int.from_bytes(digest[:4], 'big') % self.shards}"

    def poll_at(self, job_id: str, at: float) -> dict[str, Any]:
        """The attributes that put a job on the sparse due index, due at `at`."""
        # Millisecond precision: the local stack scales the schedule down to fractions of a second.
        return {"due_shard": self.due_shard(job_id), "next_poll_at": round(at, 3)}

    def owed_at(self, job_id: str, at: float) -> dict[str, Any]:
        """The outbox: a terminal job whose notification is owed sits on the same sparse index,
        under `owed#<n>` partitions the poll never reads, until the notification is queued; the
        poller's sweep queues what is still there after `at`."""
        return {"due_shard": OWED_PREFIX + self.due_shard(job_id).split("#", 1)[1],
                "next_poll_at": round(at, 3)}

    def notification_state(self, job_id: str) -> tuple[set[str], float | None]:
        """A job's delivered webhook-ids and its notification lease (until when)."""
        item = self.ddb.get_item(
            TableName=self.table, Key=job_key(job_id), ConsistentRead=True,
            ProjectionExpression="#done, #lease",
            ExpressionAttributeNames={"#done": "notified_ids", "#lease": "notify_lease_until"},
        ).get("Item") or {}
        lease = item.get("notify_lease_until", {}).get("N")
        return set(item.get("notified_ids", {}).get("SS", [])), float(lease) if lease is not None else None

    # --- provider cooldowns (domain/cooldown.py) ------------------------------------------
    @staticmethod
    def _cooldown_key(provider: str) -> dict:
        return {"pk": {"S": f"COOLDOWN#{provider}"}, "sk": {"S": "COOLDOWN"}}

    def cooldowns(self, providers: list[str]) -> dict[str, tuple[float, int]]:
        """`{provider: (until, failures)}` for the providers that have a cooldown item (expired
        or not), in one BatchGetItem."""
        if not providers:
            return {}
        response = self.ddb.batch_get_item(RequestItems={self.table: {
            "Keys": [self._cooldown_key(p) for p in dict.fromkeys(providers)], "ConsistentRead": True}})
        found: dict[str, tuple[float, int]] = {}
        for item in response.get("Responses", {}).get(self.table, []):
            provider = item["pk"]["S"].split("#", 1)[1]
            found[provider] = (float(item["until"]["N"]), int(item.get("failures", {"N": "0"})["N"]))
        return found

    def trip_cooldown(self, provider: str, until: float) -> None:
        self.ddb.update_item(
            TableName=self.table, Key=self._cooldown_key(provider),
            UpdateExpression="SET #until = :until, expires_at = :expires ADD failures :one",
            ExpressionAttributeNames={"#until": "until"},
            ExpressionAttributeValues={":until": {"N": f"{until:.3f}"}, ":one": {"N": "1"},
                                       ":expires": {"N": str(int(until + 86400))}},
        )

    def clear_cooldown(self, provider: str) -> None:
        self.ddb.delete_item(TableName=self.table, Key=self._cooldown_key(provider))

    def _shards(self, shards: Iterable[int] | None) -> list[int]:
        """The shards a call covers: the ones named (a poller invocation's), else all."""
        return list(range(self.shards)) if shards is None else [k for k in shards if 0 <= k < self.shards]

    # --- poller shard leases: one poll invocation per shard at a time --------------------
    @staticmethod
    def _shard_lease_key(shard: int) -> dict:
        return {"pk": {"S": f"{SHARD_LEASE_PREFIX}{shard}"}, "sk": {"S": SHARD_LEASE_SK}}

    def take_shard_lease(self, shard: int, holder: str, until: float, now: float) -> bool:
        """Hold `shard` until `until` unless another holder's lease is still running."""
        try:
            self.ddb.update_item(
                TableName=self.table, Key=self._shard_lease_key(shard),
                UpdateExpression="SET #holder = :holder, #until = :until, expires_at = :expires",
                ConditionExpression="attribute_not_exists(pk) OR #until < :now OR #holder = :holder",
                ExpressionAttributeNames={"#holder": "holder", "#until": "lease_until"},
                ExpressionAttributeValues={":holder": {"S": holder}, ":until": {"N": f"{until:.3f}"},
                                           ":now": {"N": f"{now:.3f}"},
                                           ":expires": {"N": str(int(until + 86400))}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_shard_lease(self, shard: int, holder: str) -> None:
        """End `holder`'s lease now (the next tick's invocation may take the shard at once)."""
        try:
            self.ddb.delete_item(
                TableName=self.table, Key=self._shard_lease_key(shard),
                ConditionExpression="#holder = :holder", ExpressionAttributeNames={"#holder": "holder"},
                ExpressionAttributeValues={":holder": {"S": holder}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            pass  # expired and taken by another invocation meanwhile: theirs now

    def shard_leases(self, shards: Iterable[int]) -> dict[int, float]:
        """`{shard: lease_until}` of the shards whose lease item exists (expired or not)."""
        keys = [self._shard_lease_key(k) for k in shards]
        found: dict[int, float] = {}
        for start in range(0, len(keys), 100):  # BatchGetItem takes 100 keys
            request = {self.table: {"Keys": keys[start:start + 100], "ConsistentRead": True}}
            while request:
                response = self.ddb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    shard = int(item["pk"]["S"][len(SHARD_LEASE_PREFIX):])
                    found[shard] = float(item.get("lease_until", {"N": "0"})["N"])
                request = response.get("UnprocessedKeys") or {}
        return found

    def owed_jobs(self, now: float, limit: int = 200, *, shards: Iterable[int] | None = None
                  ) -> Iterator[dict[str, Any]]:
        """Terminal jobs whose notification was owed before `now` and is still not queued."""
        for shard in self._shards(shards):
            page = self.ddb.query(
                TableName=self.table, IndexName=DUE_INDEX, Limit=limit,
                KeyConditionExpression="due_shard = :shard AND next_poll_at <= :now",
                ExpressionAttributeValues={":shard": {"S": f"{OWED_PREFIX}{shard}"},
                                           ":now": {"N": f"{now:.3f}"}},
            )
            for item in page.get("Items", []):
                yield from_ddb(item)

    def due_jobs(self, now: float, limit: int = 1000, *, shards: Iterable[int] | None = None
                 ) -> Iterator[dict[str, Any]]:
        """Jobs whose next poll is due, from the sparse index: reads only what is due."""
        for shard in self._shards(shards):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": "due_shard = :shard AND next_poll_at <= :now",
                "ExpressionAttributeValues": {":shard": {"S": f"due#{shard}"}, ":now": {"N": f"{now:.3f}"}},
                "Limit": limit,
            }
            while True:
                page = self.ddb.query(**kwargs)
                for item in page.get("Items", []):
                    yield from_ddb(item)
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def next_due_at(self, horizon: float, *, shards: Iterable[int] | None = None) -> tuple[float | None, int]:
        """The earliest next poll up to `horizon`, and how many index items were read for it
        (at most one per shard)."""
        earliest, read = None, 0
        for shard in self._shards(shards):
            page = self.ddb.query(
                TableName=self.table, IndexName=DUE_INDEX, Limit=1, ScanIndexForward=True,
                KeyConditionExpression="due_shard = :shard AND next_poll_at <= :horizon",
                ExpressionAttributeValues={":shard": {"S": f"due#{shard}"},
                                           ":horizon": {"N": f"{horizon:.3f}"}},
            )
            for item in page.get("Items", []):
                read += 1
                at = float(item["next_poll_at"]["N"])
                earliest = at if earliest is None else min(earliest, at)
        return earliest, read

    def tenant_jobs(self, tenant_id: str, *, limit: int, start_key: dict | None = None,
                    phases: Iterable[Phase] = ()) -> tuple[list[Job], dict | None]:
        """A tenant's jobs, newest first, from the by_tenant index (a Query, never a Scan).
        DynamoDB applies Limit before the phase filter, so pages are read until `limit`
        jobs are found; the returned key resumes right after the last job returned."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "IndexName": TENANT_INDEX, "ScanIndexForward": False,
            "KeyConditionExpression": "tenant_id = :tenant",
            "ExpressionAttributeValues": {":tenant": {"S": tenant_id}},
        }
        wanted = [p.value for p in phases]
        if wanted:
            placeholders = ", ".join(f":p{i}" for i in range(len(wanted)))
            kwargs["FilterExpression"] = f"#phase IN ({placeholders})"
            kwargs["ExpressionAttributeNames"] = {"#phase": "phase"}
            kwargs["ExpressionAttributeValues"].update({f":p{i}": {"S": v} for i, v in enumerate(wanted)})
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        jobs: list[Job] = []
        while True:
            kwargs["Limit"] = limit - len(jobs) + (0 if not wanted else 20)
            page = self.ddb.query(**kwargs)
            for raw in page.get("Items", []):
                jobs.append(Job.from_item(from_ddb(raw)))
                if len(jobs) == limit:
                    last = raw
                    next_key = {k: last[k] for k in ("pk", "sk", "tenant_id", "created_at")}
                    more = raw is not page["Items"][-1] or "LastEvaluatedKey" in page
                    return jobs, next_key if more else None
            if "LastEvaluatedKey" not in page:
                return jobs, None
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- API keys -----------------------------------------------------------------------
    # One key is three items, written and revoked together in one transaction:
    #   APIKEY#<sha256>  / APIKEY         what `authenticate` reads (one GetItem by hash)
    #   APIKEYS          / KEY#<key id>   every key, by id: revoke by id, list all (a Query)
    #   TENANT#<tenant>  / APIKEY#<id>    one tenant's keys (a Query, no Scan)
    # None carries `tenant_id`, which would put it in the by_tenant index among the jobs.
    def put_api_key(self, key_hash: str, tenant_id: str, name: str, *, key_id: str | None = None,
                    prefix: str = "") -> dict[str, Any]:
        record = {
            "key_id": key_id or new_key_id(), "key_hash": key_hash, "tenant_id_owner": tenant_id,
            "name": name, "key_prefix": prefix, "created_at": iso(utc_now()),
        }
        items = [{**keys, **record} for keys in _key_item_keys(key_hash, record["key_id"], tenant_id)]
        self.ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": {k: to_ddb(v) for k, v in item.items()},
                     "ConditionExpression": "attribute_not_exists(pk)"}}
            for item in items
        ])
        return record

    def get_api_key(self, key_hash: str) -> dict[str, Any] | None:
        # Strongly consistent: a key revoked a moment ago must already fail.
        response = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": f"APIKEY#{key_hash}"}, "sk": {"S": KEY_SK}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return from_ddb(item) if item else None

    def get_api_key_by_id(self, key_id: str) -> dict[str, Any] | None:
        response = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": KEY_REGISTRY_PK}, "sk": {"S": f"KEY#{key_id}"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _key_record(from_ddb(item)) if item else None

    def list_api_keys(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """All keys, or one tenant's: a Query on one partition either way."""
        pk, sk_prefix = (f"TENANT#{tenant_id}", "APIKEY#") if tenant_id else (KEY_REGISTRY_PK, "KEY#")
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
        }
        records: list[dict[str, Any]] = []
        while True:
            page = self.ddb.query(**kwargs)
            records.extend(_key_record(from_ddb(item)) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return records
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def revoke_api_key(self, key_id: str, revoked_at: str) -> tuple[dict[str, Any] | None, bool]:
        """Mark the key revoked on all three items at once. Returns (record, revoked_now):
        (None, False) for an unknown id, (record, False) when it was revoked already."""
        record = self.get_api_key_by_id(key_id)
        if record is None or record.get("revoked_at"):
            return record, False
        keys = _key_item_keys(record["key_hash"], key_id, record["tenant_id_owner"])
        try:
            self.ddb.transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": self.table, "Key": {k: to_ddb(v) for k, v in key.items()},
                    "UpdateExpression": "SET revoked_at = :at",
                    "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(revoked_at)",
                    "ExpressionAttributeValues": {":at": {"S": revoked_at}},
                }}
                for key in keys
            ])
        except self.ddb.exceptions.TransactionCanceledException:
            # A concurrent revoke won (or an item is missing): report what is stored now.
            current = self.get_api_key_by_id(key_id)
            if current is not None and current.get("revoked_at"):
                return current, False
            raise
        return {**record, "revoked_at": revoked_at}, True

    # --- uploads: pk UPLOAD#<id>; no `tenant_id` attribute, so not in the by_tenant index ---
    @staticmethod
    def _upload_key(upload_id: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"UPLOAD#{upload_id}"}, "sk": {"S": UPLOAD_SK}}

    def put_upload(self, upload: Upload) -> None:
        self.ddb.put_item(
            TableName=self.table,
            Item={
                **self._upload_key(upload.id),
                "owner_tenant": {"S": upload.tenant_id},
                "object_key": {"S": upload.key},
                "content_type": {"S": upload.content_type},
                "size_bytes": {"N": str(upload.size_bytes)},
                "created_at": {"S": upload.created_at},
                "expires_at": {"N": str(upload.usable_until)},  # the table's TTL attribute
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_upload(self, upload_id: str) -> Upload | None:
        item = self.ddb.get_item(TableName=self.table, Key=self._upload_key(upload_id),
                                 ConsistentRead=True).get("Item")
        if not item:
            return None
        return Upload(id=upload_id, tenant_id=item["owner_tenant"]["S"], key=item["object_key"]["S"],
                      content_type=item["content_type"]["S"], size_bytes=int(item["size_bytes"]["N"]),
                      created_at=item["created_at"]["S"], usable_until=int(item["expires_at"]["N"]))

    # --- webhook secrets: pk TENANT#<id>, sk WEBHOOK_SECRET (attributes avoid the index keys) ---
    @staticmethod
    def _secret_key(tenant_id: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": SECRET_SK}}

    def webhook_secret(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant's secret item: {secret, secret_created_at, previous_secret?, previous_until?}."""
        item = self.ddb.get_item(TableName=self.table, Key=self._secret_key(tenant_id),
                                 ConsistentRead=True).get("Item")
        return from_ddb(item) if item else None

    def create_webhook_secret(self, tenant_id: str, secret: str, created_at: str) -> bool:
        """The first secret; False when another writer created one first."""
        item = {**self._secret_key(tenant_id), "tenant_owner": to_ddb(tenant_id), "secret": to_ddb(secret),
                "secret_created_at": to_ddb(created_at)}
        try:
            self.ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def replace_webhook_secret(self, tenant_id: str, *, old: str, new: str, created_at: str,
                               previous_until: int) -> bool:
        """Rotate, only if the stored secret is still OLD; False when someone rotated meanwhile."""
        try:
            self.ddb.update_item(
                TableName=self.table, Key=self._secret_key(tenant_id),
                UpdateExpression="SET secret = :new, secret_created_at = :at, previous_secret = :old, "
                                 "previous_until = :until",
                ConditionExpression="secret = :old",
                ExpressionAttributeValues={
                    ":new": to_ddb(new), ":at": to_ddb(created_at), ":old": to_ddb(old),
                    ":until": to_ddb(previous_until),
                },
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True


KEY_REGISTRY_PK = "APIKEYS"
_KEY_RECORD_FIELDS = ("key_id", "key_hash", "tenant_id_owner", "name", "key_prefix", "created_at",
                      "revoked_at")


def new_key_id() -> str:
    """A key's public id: names it in listings and revocation, reveals nothing about it."""
    return "key_" + secrets.token_hex(6)


def _key_item_keys(key_hash: str, key_id: str, tenant_id: str) -> list[dict[str, str]]:
    return [
        {"pk": f"APIKEY#{key_hash}", "sk": KEY_SK},
        {"pk": KEY_REGISTRY_PK, "sk": f"KEY#{key_id}"},
        {"pk": f"TENANT#{tenant_id}", "sk": f"APIKEY#{key_id}"},
    ]


def _key_record(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in _KEY_RECORD_FIELDS if k in item}
