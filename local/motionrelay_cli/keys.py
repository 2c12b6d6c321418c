"""`motionrelay keys create|list|revoke`: API keys, straight in the stack's DynamoDB table.

Key management is an operator's job, not a tenant's, so it needs AWS credentials for the
table rather than an API key (there is no admin API to protect). The key logic itself is
the package's (`motionrelay.apikeys`): the CLI only picks the table and prints.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from motionrelay_cli.api import CliError
from motionrelay_cli.config import TableTarget


def store_for(target: TableTarget) -> Any:
    """A JobStore on the chosen table, with its own boto3 client (not the process-wide one)."""
    import boto3
    from botocore.config import Config

    from motionrelay.infra.jobs_table import JobStore

    session_args: dict[str, Any] = {"region_name": target.region}
    if target.local:
        # moto accepts anything; never hand real credentials to a local endpoint.
        session_args |= {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                         "aws_session_token": None}
    session = boto3.session.Session(**session_args)
    ddb = session.client("dynamodb", endpoint_url=target.endpoint_url or None,
                         config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
                                       read_timeout=15))
    return JobStore(table_name=target.table, ddb=ddb)


def aws_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


def describe_aws_error(exc: BaseException, target: TableTarget) -> str:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    where = f"table {target.table}" + (f" at {target.endpoint_url}" if target.endpoint_url else "")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return f"{where}: no such table (pass --table <JobsTableName> or --stack <name>)"
        return f"{where}: {code}: {exc.response.get('Error', {}).get('Message', exc)}"
    if isinstance(exc, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials for the table (aws configure, AWS_PROFILE, ...)"
    if isinstance(exc, EndpointConnectionError):
        return f"{where}: cannot connect: {exc}"
    return f"{where}: {exc}"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def create(target: TableTarget, tenant: str, name: str, out: TextIO, err: TextIO) -> int:
    from motionrelay.apikeys import create_key

    raw_key, info = create_key(tenant, name, store=store_for(target))
    # The key alone on stdout (KEY=$(motionrelay keys create ...)); the words on stderr.
    print(raw_key, file=out, flush=True)
    print(f"created {info.key_id} ({info.prefix}...) for tenant {info.tenant_id}"
          f"{f' named {info.name!r}' if info.name else ''} in {target.table}.\n"
          "This is the only time the key is shown: only its SHA-256 is stored.", file=err, flush=True)
    return 0


def list_(target: TableTarget, tenant: str | None, as_json: bool, out: TextIO) -> int:
    from motionrelay.apikeys import list_keys

    keys = list_keys(tenant, store=store_for(target))
    if as_json:
        print(json.dumps([k.to_dict() for k in keys], indent=2), file=out)
        return 0
    if not keys:
        print(f"no keys{f' for tenant {tenant}' if tenant else ''}", file=out)
        return 0
    rows = [[k.key_id, f"{k.prefix}...", k.tenant_id, k.name or "-", k.created_at, k.revoked_at or "-"]
            for k in keys]
    print(_table(rows, ["ID", "PREFIX", "TENANT", "NAME", "CREATED", "REVOKED"]), file=out)
    return 0


def revoke(target: TableTarget, key_id: str, out: TextIO) -> int:
    from motionrelay.apikeys import revoke_key

    info, revoked_now = revoke_key(key_id, store=store_for(target))
    if revoked_now:
        print(f"revoked {info.key_id} (tenant {info.tenant_id}): requests with it are refused (401) "
              "from now on", file=out)
    else:
        print(f"{info.key_id} (tenant {info.tenant_id}) was already revoked at {info.revoked_at}", file=out)
    return 0


def guard(target: TableTarget | None, action: Any) -> int:
    """Run a keys action, turning AWS failures and refusals into one line."""
    from motionrelay.domain.errors import MotionRelayError

    try:
        return action()
    except MotionRelayError as exc:
        field = f" (field: {exc.field})" if exc.field else ""
        raise CliError(f"{exc.code}: {exc.message}{field}") from None
    except aws_errors() as exc:
        if target is None:
            raise CliError(str(exc)) from None
        raise CliError(describe_aws_error(exc, target)) from None


def run(args: Any, environ: Any, out: TextIO, err: TextIO) -> int:
    """`motionrelay keys ...` with argparse's namespace."""
    from motionrelay_cli.config import ask_which_stack, resolve_table

    target = guard(None, lambda: resolve_table(
        getattr(args, "table", None), getattr(args, "endpoint_url", None), getattr(args, "region", None),
        getattr(args, "stack", None), environ, port=getattr(args, "port", None), choose=ask_which_stack()))
    if args.keys_command == "create":
        return guard(target, lambda: create(target, args.tenant, args.name, out, err))
    if args.keys_command == "list":
        return guard(target, lambda: list_(target, args.tenant, args.json, out))
    return guard(target, lambda: revoke(target, args.key_id, out))
