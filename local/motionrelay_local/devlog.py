"""`make dev`'s terminal, kept readable: one short line per API request and per job transition;
everything else (every function's JSON log, warnings, the stack's own lines) goes to a file,
`out/dev-<port>.log`, as JSON lines. `MOTIONRELAY_LOCAL_LOG=json` puts it all on the terminal
again, as before.

Job transitions are read from the stack's own table (moto), not from the functions' logs, so
every phase a job takes shows up once, whichever function wrote it:

    17:05:03  job_1a1feafbe0f1a596…  kie        provider_queued -> provider_running   0.8 s

The seconds are the time spent in the previous stage (from the job's own `updated_at`s).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

ENV_NAME = "MOTIONRELAY_LOCAL_LOG"
REQUESTS_LOGGER = "motionrelay_local.requests"
WATCH_SECONDS = 0.25


def log_path(root: Path, port: int) -> Path:
    return root / "out" / f"dev-{port}.log"


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def _epoch(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {"timestamp": self.formatTime(record), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body)


class _TerminalFilter(logging.Filter):
    """The request lines, and anything the stack warns about."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == REQUESTS_LOGGER or record.levelno >= logging.WARNING


class DevLog:
    """The file every line goes to, and the few lines the terminal gets."""

    def __init__(self, path: Path, terminal: TextIO) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.terminal = terminal
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def shown_path(self, root: Path) -> str:
        try:
            return str(self.path.relative_to(root))
        except ValueError:
            return str(self.path)

    def install_logging(self) -> None:
        """The stack's loggers: everything to the file, requests and warnings to the terminal."""
        to_file = logging.StreamHandler(self._file)
        to_file.setFormatter(_JsonFormatter())
        to_terminal = logging.StreamHandler(self.terminal)
        to_terminal.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
        to_terminal.addFilter(_TerminalFilter())
        ours = logging.getLogger("motionrelay_local")
        ours.handlers[:] = [to_file, to_terminal]
        ours.setLevel(logging.INFO)
        ours.propagate = False
        logging.root.handlers[:] = [to_file]  # libraries (botocore, werkzeug) when they warn
        logging.root.setLevel(logging.WARNING)

    def function_output(self, function: str, stream: str, line: str) -> None:
        """A line a function's process wrote (lambda_runtime's sink): to the file as a JSON line
        (Powertools' lines already are; others are wrapped), errors flagged on the terminal."""
        text = line.rstrip("\n")
        if not text:
            return
        record: Any = None
        if text.startswith("{"):
            try:
                record = json.loads(text)
            except ValueError:
                record = None
        if not isinstance(record, dict):
            record = {"function": function, "stream": stream, "message": text}
        else:
            record.setdefault("function", function)
        with self._lock:
            self._file.write(json.dumps(record) + "\n")
        level = str(record.get("level", "")).upper()
        if level in {"ERROR", "CRITICAL"} or text.startswith(("Traceback", "[mrlocal iam]")):
            self.say(f"{function}: {str(record.get('message', text))[:160]}  (details: {self.path.name})")

    def say(self, text: str) -> None:
        with self._lock:
            print(f"{_stamp()}  {text}", file=self.terminal, flush=True)

    def close(self) -> None:
        with self._lock:
            self._file.close()


class JobWatcher:
    """Reads the jobs in the stack's table a few times a second and reports each new stage."""

    def __init__(self, ddb: Any, table: str, say: Any, interval: float = WATCH_SECONDS) -> None:
        from motionrelay.domain.job import Phase
        from motionrelay.jobs import STAGES

        self._stage = {p.value: STAGES[p] for p in Phase}
        self.ddb, self.table, self.say, self.interval = ddb, table, say, interval
        self.seen: dict[str, tuple[str, float | None]] = {}  # job id -> (stage, since)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mrlocal-devlog-jobs", daemon=True)

    def start(self) -> JobWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - moto stopping under us at shutdown
                if self._stop.is_set():
                    return
                logging.getLogger("motionrelay_local").debug("job watcher pass failed", exc_info=True)

    def check(self) -> list[str]:
        lines = []
        for item in self._jobs():
            job_id = item["pk"]["S"].removeprefix("JOB#")
            stage = self._stage.get(item.get("phase", {}).get("S", ""), "?")
            at = _epoch(item.get("updated_at", {}).get("S"))
            before, since = self.seen.get(job_id, ("accepted", _epoch(item.get("created_at", {}).get("S"))))
            if stage == before:
                continue
            self.seen[job_id] = (stage, at)
            took = f"{max(0.0, at - since):.1f} s" if at is not None and since is not None else "-"
            provider = item.get("provider", {}).get("S") or "-"
            line = f"{job_id}  {provider:<9} {before} -> {stage}  {took}"
            lines.append(line)
            self.say(line)
        return lines

    def _jobs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table, "FilterExpression": "sk = :job",
            "ExpressionAttributeValues": {":job": {"S": "JOB"}},
            "ProjectionExpression": "pk, phase, provider, created_at, updated_at"}
        while True:
            page = self.ddb.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(items, key=lambda i: i.get("updated_at", {}).get("S", ""))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
