"""`python -m motionrelay_local dev|demo` (what `make dev` and `make demo` run)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from motionrelay_local.stack import LocalStack


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # one clean shutdown path for Ctrl-C and `kill`


def providers_banner(stack: LocalStack) -> str:
    """Which providers the sandbox simulates and which the caller pointed elsewhere."""
    lines = []
    if stack.providers.simulated and stack.sandbox is not None:
        lines.append(f"simulated providers    {', '.join(stack.providers.simulated)}  "
                     f"(sandbox {stack.sandbox.root_url})")
    for name, url in stack.providers.external.items():
        shown = url or f"(no MOTIONRELAY_{name.upper()}_BASE_URL: the adapter's default)"
        lines.append(f"{name + ' ->':<23}{shown}")
    return "".join(line + "\n" for line in lines)


def _terminal_logging() -> None:
    """MOTIONRELAY_LOCAL_LOG=json: every line on the terminal, as before devlog.py."""
    # The stack's own lines at INFO; libraries (botocore, werkzeug) only when they warn. Ours get
    # their own handler: Powertools filters every logger named like its service ("motionrelay*")
    # out of the root handlers.
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.basicConfig(level=logging.WARNING)
    logging.root.handlers[0].setFormatter(fmt)
    handler = logging.StreamHandler()
    handler.setFormatter(fmt)
    ours = logging.getLogger("motionrelay_local")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def banner(stack: LocalStack, *, state_file: str, log_file: str | None) -> str:
    from motionrelay_local.faults import ENV_NAME as FAULTS_ENV

    logs = (f"logs                   {log_file}  (the terminal: requests and job stages; "
            "MOTIONRELAY_LOCAL_LOG=json for everything)\n" if log_file else "")
    return (
        f"\nmotionrelay local API  {stack.api_url}\n"
        f"web console            {stack.api_url}/console  (paste the dev key)\n"
        f"dev API key            {stack.dev_api_key}  (tenant 'dev')\n"
        f"API docs (Swagger UI)  {stack.api_url}/v1/docs  (OpenAPI: /v1/openapi.json)\n"
        f"moto (DynamoDB/S3/SQS) {stack.moto_url}\n"
        f"routing                {stack.routing}\n"
        f"{providers_banner(stack)}"
        f"faults                 {stack.faults.describe()}  ({FAULTS_ENV})\n"
        f"{logs}"
        f"CLI state              {state_file} (the motionrelay command uses this stack)\n\n"
        f"Try:\n"
        f"  .venv/bin/motionrelay submit samples/character.png samples/motion.mp4 --quality std --wait "
        f"--out out/\n"
        f"  .venv/bin/motionrelay listen      # then submit with --webhook-url <the URL it prints>\n"
        f"  .venv/bin/motionrelay keys create --tenant acme\n"
        f"  curl -H \"Authorization: Bearer {stack.dev_api_key}\" {stack.api_url}/v1/jobs\n\n"
        "Ctrl-C stops.\n"
    )


def dev(port: int) -> int:
    from motionrelay_cli.config import remove_local_state, state_filename, write_local_state
    from motionrelay_local import devlog, lambda_runtime
    from motionrelay_local.faults import FaultSpecError
    from motionrelay_local.lambda_runtime import REGION
    from motionrelay_local.stack import REPO_ROOT, LocalStack
    from motionrelay_local.template import TemplateError

    quiet = os.environ.get(devlog.ENV_NAME, "").strip().lower() != "json"
    log = None
    if quiet:
        log = devlog.DevLog(devlog.log_path(REPO_ROOT, port or os.getpid()), sys.stdout)
        log.install_logging()
        lambda_runtime.OUTPUT_SINK = log.function_output
    else:
        _terminal_logging()
    try:
        # The shell's configuration wins: MOTIONRELAY_ROUTING, MOTIONRELAY_<P>_BASE_URL/_API_KEY,
        # MOTIONRELAY_PUBLIC_URL, MOTIONRELAY_LOCAL_FAULTS, ...
        stack = LocalStack(port=port, environ=os.environ).start()
    except (OSError, TemplateError, FaultSpecError) as exc:
        print(f"motionrelay dev: cannot start: {exc}", file=sys.stderr)
        return 1
    # One state file per stack (per port): two `make dev`s never take each other's.
    state_file = REPO_ROOT / state_filename(int(stack.api_url.rsplit(":", 1)[1]))
    watcher = None
    try:
        # The `motionrelay` CLI finds this stack (API, dev key, moto, table) through this file.
        write_local_state(state_file, api_url=stack.api_url, api_key=stack.dev_api_key,
                          endpoint_url=stack.moto_url, table=stack.table, region=REGION)
        print(banner(stack, state_file=state_file.name,
                     log_file=log.shown_path(REPO_ROOT) if log else None), flush=True)
        if log is not None:
            watcher = devlog.JobWatcher(stack.client("dynamodb"), stack.table, log.say).start()
        stack.serve_forever()
    finally:
        remove_local_state(state_file)
        if watcher is not None:
            watcher.stop()
        stack.stop()
        lambda_runtime.OUTPUT_SINK = None
        if log is not None:
            log.close()
        print("motionrelay dev: stopped", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from motionrelay.settings import PROVIDERS

    parser = argparse.ArgumentParser(prog="python -m motionrelay_local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_dev = sub.add_parser("dev", help="serve the API on loopback until Ctrl-C")
    p_dev.add_argument("--port", type=int, default=None, help="API port (default: $PORT or 3000)")
    p_demo = sub.add_parser("demo", help="run the bundled sample job end to end, write the video to out/")
    p_demo.add_argument("--provider", default=None, choices=PROVIDERS,
                        help="force a provider (default: routing decides)")
    p_demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the job")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C must work even when started from a shell that ignores SIGINT in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if args.command == "dev":
            port = args.port if args.port is not None else int(os.environ.get("PORT") or 3000)
            return dev(port)
        from motionrelay_local.demo import run

        return run(provider=args.provider, timeout=args.timeout)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
