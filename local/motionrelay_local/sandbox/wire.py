"""Transport-neutral request/response values passed between the server and provider modules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Request:
    method: str
    path: str  # relative to the provider's root, e.g. "/api/v1/jobs/createTask"
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query_one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def media_type(self) -> str:
        """The Content-Type without parameters, lower-cased ("" when absent)."""
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """Parse the body as JSON; raises ValueError on malformed input."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # when set, streamed from disk instead of `body`

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json"})

    @classmethod
    def from_file(cls, path: Path, content_type: str) -> Response:
        return cls(200, b"", {"Content-Type": content_type}, file=path)
