"""Stand-ins that are not CPU-bound, for bench/poller.py: a DynamoDB JSON-protocol server and a
Kie status endpoint, each answering after a fixed latency, with real concurrency (a thread
per connection, HTTP/1.1 keep-alive), run in their own processes.

`DynamoStub` answers what the poller's workload sends, correctly enough for it: PutItem,
BatchWriteItem, GetItem, BatchGetItem, UpdateItem (SET of values, `list_append(if_not_exists)`,
`if_not_exists`, `#a + :b`; ADD; REMOVE; ReturnValues ALL_NEW) and Query of the sparse `due`
index (`due_shard = :s AND next_poll_at <= :t`, Limit, ScanIndexForward, pagination). It does
not evaluate ConditionExpressions (every write wins: nothing races in the benchmark) and
refuses a Scan after counting it, so a benchmark can report that none happened.

    python bench/stubs.py dynamo <port> <latency_s>     # prints "ready", serves until killed
    python bench/stubs.py kie <port> <latency_s>
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from motionrelay.infra.resources import DUE_PROJECTION


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def _number(value: dict) -> float:
    return float(value["N"])


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        depth += ch == "("
        depth -= ch == ")"
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


_CLAUSE = re.compile(r"\b(SET|ADD|REMOVE|DELETE)\b")


class DynamoStub:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict] = {}
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.items_returned = 0

    # --- operations -----------------------------------------------------------------
    def PutItem(self, body: dict) -> dict:  # noqa: N802 - the operation's name
        item = body["Item"]
        self.items[(item["pk"]["S"], item["sk"]["S"])] = item
        return {}

    def BatchWriteItem(self, body: dict) -> dict:  # noqa: N802
        for requests in body["RequestItems"].values():
            for request in requests:
                if "PutRequest" in request:
                    self.PutItem({"Item": request["PutRequest"]["Item"]})
                else:
                    key = request["DeleteRequest"]["Key"]
                    self.items.pop((key["pk"]["S"], key["sk"]["S"]), None)
        return {"UnprocessedItems": {}}

    def GetItem(self, body: dict) -> dict:  # noqa: N802
        key = body["Key"]
        item = self.items.get((key["pk"]["S"], key["sk"]["S"]))
        if item is None:
            return {}
        self.items_returned += 1
        return {"Item": dict(item)}

    def BatchGetItem(self, body: dict) -> dict:  # noqa: N802
        responses = {}
        for table, request in body["RequestItems"].items():
            found = [self.GetItem({"Key": key}).get("Item") for key in request["Keys"]]
            responses[table] = [item for item in found if item]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def DeleteItem(self, body: dict) -> dict:  # noqa: N802
        key = body["Key"]
        self.items.pop((key["pk"]["S"], key["sk"]["S"]), None)
        return {}

    def UpdateItem(self, body: dict) -> dict:  # noqa: N802
        key = body["Key"]
        names = body.get("ExpressionAttributeNames", {})
        values = body.get("ExpressionAttributeValues", {})
        item = dict(self.items.get((key["pk"]["S"], key["sk"]["S"])) or key)

        def name(token: str) -> str:
            return names.get(token, token)

        def operand(token: str) -> dict | None:
            token = token.strip()
            if token.startswith(":"):
                return values[token]
            match = re.fullmatch(r"if_not_exists\(\s*(\S+?)\s*,\s*(\S+?)\s*\)", token)
            if match:
                return item.get(name(match[1])) or operand(match[2])
            match = re.fullmatch(r"list_append\((.*)\)", token)
            if match:
                left, right = (operand(part) for part in _split_top(match[1]))
                return {"L": (left or {"L": []})["L"] + (right or {"L": []})["L"]}
            return item.get(name(token))

        expression = body["UpdateExpression"]
        pieces = _CLAUSE.split(expression)
        for keyword, clause in zip(pieces[1::2], pieces[2::2], strict=True):
            for action in _split_top(clause):
                if keyword == "SET":
                    target, rhs = (part.strip() for part in action.split("=", 1))
                    sum_ = _split_top(rhs.replace(" + ", ","))
                    if " + " in rhs and len(sum_) == 2:
                        total = sum(_number(operand(p) or {"N": "0"}) for p in sum_)
                        item[name(target)] = {"N": repr(total) if total % 1 else str(int(total))}
                    else:
                        item[name(target)] = operand(rhs)
                elif keyword == "REMOVE":
                    item.pop(name(action), None)
                elif keyword == "ADD":
                    target, token = action.split()
                    value, current = values[token], item.get(name(target))
                    if "SS" in value:
                        merged = set(value["SS"]) | set((current or {}).get("SS", []))
                        item[name(target)] = {"SS": sorted(merged)}
                    else:
                        total = _number(value) + (_number(current) if current else 0)
                        item[name(target)] = {"N": str(int(total)) if total == int(total) else repr(total)}
        self.items[(key["pk"]["S"], key["sk"]["S"])] = item
        if body.get("ReturnValues") == "ALL_NEW":
            return {"Attributes": dict(item)}
        return {}

    _KEY = re.compile(r"\s*(\w+)\s*=\s*(:\w+)\s*(?:AND\s+(\w+)\s*(<=|<|>=|>|=)\s*(:\w+))?\s*$")

    def Query(self, body: dict) -> dict:  # noqa: N802
        values = body["ExpressionAttributeValues"]
        match = self._KEY.match(body["KeyConditionExpression"])
        if not match:
            raise ValueError(f"unsupported key condition {body['KeyConditionExpression']!r}")
        hash_attr, hash_value, range_attr, op, range_value = match.groups()
        wanted = values[hash_value]["S"]
        bound = _number(values[range_value]) if range_attr else None
        compare = {"<=": float.__le__, "<": float.__lt__, ">=": float.__ge__, ">": float.__gt__,
                   "=": float.__eq__}.get(op or "")
        found = []
        for item in list(self.items.values()):
            if item.get(hash_attr, {}).get("S") != wanted:
                continue
            if range_attr and (range_attr not in item or not compare(_number(item[range_attr]), bound)):
                continue
            found.append(item)
        order = range_attr or "next_poll_at"
        found.sort(key=lambda it: (_number(it[order]) if order in it else 0.0, it["pk"]["S"]),
                   reverse=body.get("ScanIndexForward", True) is False)
        start = body.get("ExclusiveStartKey")
        if start:
            keys = [(it["pk"]["S"], it["sk"]["S"]) for it in found]
            at = keys.index((start["pk"]["S"], start["sk"]["S"])) + 1
            found = found[at:]
        limit = body.get("Limit")
        page = found[:limit] if limit else found
        if body.get("IndexName") == "due":  # the index's INCLUDE projection, as DynamoDB returns it
            keep = {"pk", "sk", "due_shard", "next_poll_at", *DUE_PROJECTION}
            page = [{k: v for k, v in item.items() if k in keep} for item in page]
        self.items_returned += len(page)
        response: dict = {"Items": page, "Count": len(page), "ScannedCount": len(page)}
        if limit and len(found) > limit:
            last = page[-1]
            response["LastEvaluatedKey"] = {k: last[k] for k in ("pk", "sk", hash_attr, order) if k in last}
        return response

    def Scan(self, body: dict) -> dict:  # noqa: N802
        raise ValueError("Scan: the workload must never scan")

    def Stats(self, body: dict) -> dict:  # noqa: N802 - the benchmark's own call, not DynamoDB's
        return {"counts": dict(self.counts), "items_returned": self.items_returned}


def serve_dynamo(port: int, latency: float) -> None:
    stub = DynamoStub()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            operation = self.headers.get("X-Amz-Target", ".Stats").rsplit(".", 1)[1]
            time.sleep(latency if operation != "Stats" else 0)
            status = 200
            with stub.lock:
                stub.counts[operation] += 1
                try:
                    result = getattr(stub, operation)(body)
                except Exception as exc:  # noqa: BLE001 - answered as DynamoDB would: a 400
                    status = 400
                    result = {"__type": "com.amazon.coral.validate#ValidationException", "message": str(exc)}
            data = json.dumps(result).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    _Server(("127.0.0.1", port), Handler).serve_forever()


def serve_kie(port: int, latency: float) -> None:
    """Kie's recordInfo for tasks still generating (the poller's steady state)."""
    counts: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            if url.path == "/stats":
                data = json.dumps(dict(counts)).encode()
            else:
                time.sleep(latency)
                counts["recordInfo"] += 1
                task_id = parse_qs(url.query).get("taskId", [""])[0]
                data = json.dumps({"code": 200, "msg": "success", "data": {
                    "taskId": task_id, "model": "kling-2.6/motion-control", "state": "generating",
                    "param": "{}", "resultJson": "", "failCode": "", "failMsg": "", "costTime": 0,
                    "completeTime": None, "createTime": 1764000000000}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    _Server(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    kind, port, latency = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print("ready", flush=True)
    {"dynamo": serve_dynamo, "kie": serve_kie}[kind](port, latency)
