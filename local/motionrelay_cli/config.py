"""Which API and which table the CLI talks to.

The API: `--url`/`--api-key`, else `MOTIONRELAY_URL`/`MOTIONRELAY_API_KEY`, else the running
`make dev` (its state file). The keys commands' DynamoDB table: `--table` (or `--stack`, whose
`JobsTableName` output names it), else `MOTIONRELAY_TABLE`, else the running `make dev`.

Each `make dev` writes `.motionrelay-local-<port>.json` (mode 0600, removed when it stops) at
the repo root with its API URL, dev key, moto endpoint and table. A file is used only when
nothing else is configured, only while the process that wrote it is alive, and its dev key is
only ever sent to the URL in the same file. One stack running: that one. Several: `--port N`
picks one; otherwise the CLI asks on a terminal, and refuses (naming the ports) elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

STATE_FILENAME = ".motionrelay-local.json"  # before per-port files; still read
STATE_GLOB = ".motionrelay-local-*.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_REGION = "us-east-1"


class ConfigError(Exception):
    """Not enough configuration to know where to talk to (a usage error: exit 2)."""


@dataclass(frozen=True)
class LocalState:
    """What a running `make dev` tells the CLI about itself."""

    api_url: str
    api_key: str
    endpoint_url: str
    table: str
    region: str
    pid: int
    path: Path


@dataclass(frozen=True)
class ApiTarget:
    url: str
    api_key: str
    source: str  # "flags", "environment" or the state file's path: said in errors


@dataclass(frozen=True)
class TableTarget:
    table: str
    endpoint_url: str | None
    region: str | None
    local: bool  # the make-dev stack: moto takes any credentials, real ones must never go there


Chooser = Callable[[list[LocalState]], LocalState]


def state_filename(port: int) -> str:
    return f".motionrelay-local-{port}.json"


def state_file_candidates(cwd: Path | None = None) -> list[Path]:
    """The state files in the working directory or a parent, then in this checkout."""
    here = (cwd or Path.cwd()).resolve()
    dirs = [here, *here.parents]
    if REPO_ROOT not in dirs:
        dirs.append(REPO_ROOT)
    found: list[Path] = []
    for directory in dirs:
        found += sorted(directory.glob(STATE_GLOB)) + [directory / STATE_FILENAME]
    return found


def write_local_state(path: Path, *, api_url: str, api_key: str, endpoint_url: str, table: str,
                      region: str = LOCAL_REGION, pid: int | None = None) -> Path:
    """Atomically write the state file, readable by its owner only (it holds the dev key)."""
    body = {"api_url": api_url, "api_key": api_key, "endpoint_url": endpoint_url, "table": table,
            "region": region, "pid": pid if pid is not None else os.getpid()}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(body, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def remove_local_state(path: Path, pid: int | None = None) -> None:
    """Remove the state file if it is still ours (a newer `make dev` may have replaced it)."""
    state = _read_state(path)
    if state is not None and state.pid == (pid if pid is not None else os.getpid()):
        path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return False
    return True


def _read_state(path: Path) -> LocalState | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return LocalState(api_url=str(raw["api_url"]), api_key=str(raw["api_key"]),
                          endpoint_url=str(raw["endpoint_url"]), table=str(raw["table"]),
                          region=str(raw.get("region") or LOCAL_REGION), pid=int(raw["pid"]), path=path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def state_port(state: LocalState) -> int | None:
    try:
        return int(state.api_url.rstrip("/").rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def running_states(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[LocalState]:
    """Every running `make dev` (files whose process is alive), one per API URL."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("MOTIONRELAY_LOCAL_STATE", "").strip()
    states: dict[str, LocalState] = {}
    for path in [Path(explicit)] if explicit else state_file_candidates(cwd):
        state = _read_state(path)
        if state is not None and _pid_alive(state.pid):
            states.setdefault(state.api_url.rstrip("/"), state)
    return list(states.values())


def read_local_state(environ: Mapping[str, str] | None = None, cwd: Path | None = None, *,
                     port: int | None = None, choose: Chooser | None = None) -> LocalState | None:
    """The running `make dev`'s state, or None (no file, unreadable, or its process is gone).
    `port` picks one of several; else `choose` (the CLI asks on a terminal); else ConfigError."""
    states = running_states(environ, cwd)
    if port is not None:
        matching = [s for s in states if state_port(s) == port]
        if not matching:
            running = ", ".join(str(state_port(s)) for s in states) or "none"
            raise ConfigError(f"no `make dev` is running on port {port} (running: {running})")
        return matching[0]
    if len(states) <= 1:
        return states[0] if states else None
    if choose is not None:
        return choose(states)
    ports = ", ".join(str(state_port(s)) for s in states)
    raise ConfigError(f"several `make dev` stacks are running (ports {ports}): pass --port <port>, "
                      "or set MOTIONRELAY_URL")


def ask_which_stack() -> Chooser | None:
    """On a terminal: a chooser that asks which of several running stacks to use; else None."""
    import sys

    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None

    def choose(states: list[LocalState]) -> LocalState:
        by_port = {str(state_port(s)): s for s in states}
        print("several `make dev` stacks are running:", file=sys.stderr)
        for port, state in by_port.items():
            print(f"  {port}  {state.api_url}  (pid {state.pid})", file=sys.stderr)
        while True:
            try:
                answer = input(f"which port? [{next(iter(by_port))}] ").strip() or next(iter(by_port))
            except EOFError:
                raise ConfigError("no stack chosen: pass --port <port>") from None
            if answer in by_port:
                return by_port[answer]
            print(f"not one of: {', '.join(by_port)}", file=sys.stderr)

    return choose


def resolve_api(url: str | None, api_key: str | None, environ: Mapping[str, str] | None = None,
                cwd: Path | None = None, *, port: int | None = None, choose: Chooser | None = None
                ) -> ApiTarget:
    environ = os.environ if environ is None else environ
    env_url = environ.get("MOTIONRELAY_URL", "").strip()
    env_key = environ.get("MOTIONRELAY_API_KEY", "").strip()
    if url:
        target_url, source = url, "flags"
    elif env_url:
        target_url, source = env_url, "environment"
    else:
        state = read_local_state(environ, cwd, port=port, choose=choose)
        if state is None:
            raise ConfigError("no API to talk to: set MOTIONRELAY_URL (and MOTIONRELAY_API_KEY) or pass "
                              "--url/--api-key, or start the local stack with `make dev`")
        return ApiTarget(url=state.api_url.rstrip("/"), api_key=api_key or env_key or state.api_key,
                         source=str(state.path))
    key = api_key or env_key
    if not key:
        # The dev key goes only to the dev stack that issued it, never to another URL.
        for state in running_states(environ, cwd):
            if state.api_url.rstrip("/") == target_url.rstrip("/"):
                key = state.api_key
    if not key:
        raise ConfigError("no API key: set MOTIONRELAY_API_KEY or pass --api-key "
                          "(create one with `motionrelay keys create --tenant <tenant>`)")
    return ApiTarget(url=target_url.rstrip("/"), api_key=key, source=source)


def resolve_table(table: str | None, endpoint_url: str | None, region: str | None, stack: str | None = None,
                  environ: Mapping[str, str] | None = None, cwd: Path | None = None, *,
                  port: int | None = None, choose: Chooser | None = None) -> TableTarget:
    environ = os.environ if environ is None else environ
    if table:
        return TableTarget(table, endpoint_url, region, local=False)
    if stack:
        return TableTarget(_stack_table(stack, endpoint_url, region), endpoint_url, region, local=False)
    env_table = environ.get("MOTIONRELAY_TABLE", "").strip()
    if env_table:
        # boto3 itself honours AWS_ENDPOINT_URL and the region/credential chain.
        return TableTarget(env_table, endpoint_url, region, local=False)
    state = read_local_state(environ, cwd, port=port, choose=choose)
    if state is not None:
        return TableTarget(state.table, endpoint_url or state.endpoint_url, region or state.region,
                           local=not endpoint_url)
    raise ConfigError("which stack? pass --table <JobsTableName> or --stack <stack name> for a deployed "
                      "stack, set MOTIONRELAY_TABLE, or start the local stack with `make dev`")


def _stack_table(stack: str, endpoint_url: str | None, region: str | None) -> str:
    """The deployed stack's `JobsTableName` output."""
    import boto3

    cfn = boto3.session.Session(region_name=region).client("cloudformation", endpoint_url=endpoint_url)
    outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs") or []
    for output in outputs:
        if output.get("OutputKey") == "JobsTableName":
            return str(output["OutputValue"])
    raise ConfigError(f"stack {stack!r} has no JobsTableName output (is it a motionrelay stack?)")
