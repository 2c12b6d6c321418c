"""`motionrelay`: the command line for the motionrelay API and its API keys.

    motionrelay submit IMAGE VIDEO [--wait] [--out FILE]   run a job (local files are uploaded)
    motionrelay jobs list|get|cancel                        your jobs
    motionrelay webhook-secret get|rotate                   your notifications' signing secret
    motionrelay keys create|list|revoke                     API keys (operator: AWS credentials)

The API is `--url`/`--api-key`, else `MOTIONRELAY_URL`/`MOTIONRELAY_API_KEY`, else a running
`make dev`. Results go to stdout, progress and notes to stderr. Exit status: 0 done,
1 refused or failed (the API's `code: message` is printed, never a traceback), 2 usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from motionrelay.version import __version__
from motionrelay_cli import keys as keys_cmd
from motionrelay_cli.api import Api, ApiError, CliError, Download
from motionrelay_cli.config import ConfigError, ask_which_stack, resolve_api
from motionrelay_cli.progress import DownloadProgress, JobProgress, elapsed_text, size_text

PROVIDERS = ("kie", "novita", "aimlapi", "pixazo", "vibedream", "fal", "replicate", "kling")
STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
POLL_SECONDS = 1.0
EXTENSIONS = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/x-matroska": ".mkv"}


@dataclass(frozen=True)
class SubmitResult:
    job: dict[str, Any]
    download: Download | None = None


# -- parsing ---------------------------------------------------------------------------------

MAIN_EXAMPLES = """\
Without --url/--api-key or MOTIONRELAY_URL/MOTIONRELAY_API_KEY, a running `make dev` is used
(--port picks one of several).

examples:
  motionrelay submit samples/character.png samples/motion.mp4 --quality std --wait --out out/
  motionrelay jobs list --status running
  motionrelay jobs get job_1a1feafbe0f1a59667f568a140280b4
  motionrelay listen --forward-to http://127.0.0.1:8000/hooks
  motionrelay webhook-secret rotate
  motionrelay keys create --tenant acme --name ci --stack motionrelay
"""
SUBMIT_EXAMPLES = """\
examples:
  motionrelay submit me.png dance.mp4 --quality std --prompt "The character dances" --wait --out out/
  motionrelay submit https://example.com/me.jpg upload:0a6ed8cbf56c8cf1f4436726d670c205 \\
      --orientation video --provider novita --webhook-url https://hooks.example.com/motionrelay
  motionrelay submit me.png dance.mp4 --metadata '{"order_id": "42"}' --json
"""


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return number


def _metadata(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError("not JSON") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the command is not overwritten by the command's default.
    api_opts = argparse.ArgumentParser(add_help=False)
    api_opts.add_argument("--url", default=argparse.SUPPRESS, help="API base URL (default: $MOTIONRELAY_URL)")
    api_opts.add_argument("--api-key", default=argparse.SUPPRESS,
                          help="API key (default: $MOTIONRELAY_API_KEY)")
    api_opts.add_argument("--port", type=int, default=argparse.SUPPRESS,
                          help="which running `make dev` (by its port) when several are")
    table_opts = argparse.ArgumentParser(add_help=False)
    table_opts.add_argument("--table", default=argparse.SUPPRESS,
                            help="the stack's DynamoDB table, its JobsTableName output "
                            "(default: $MOTIONRELAY_TABLE)")
    table_opts.add_argument("--stack", default=argparse.SUPPRESS,
                            help="a deployed stack's name: its JobsTableName output is the table")
    table_opts.add_argument("--endpoint-url", default=argparse.SUPPRESS,
                            help="DynamoDB endpoint (default: $AWS_ENDPOINT_URL or AWS)")
    table_opts.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: boto3's)")
    table_opts.add_argument("--port", type=int, default=argparse.SUPPRESS,
                            help="which running `make dev` (by its port) when several are")

    parser = argparse.ArgumentParser(
        prog="motionrelay", parents=[api_opts],
        description="Kling 2.6 Motion Control through the motionrelay API.",
        epilog=MAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"motionrelay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{submit,jobs,webhook-secret,listen,keys}")

    submit = commands.add_parser("submit", parents=[api_opts], help="create a job (local files are uploaded)",
                                 description="Create a job. IMAGE and VIDEO are local files (checked here "
                                 "with the API's own rules, then uploaded through /v1/uploads), https:// "
                                 "URLs, data: URIs or upload:<id>.", epilog=SUBMIT_EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    submit.add_argument("image", metavar="IMAGE", help="the character image (PNG/JPEG)")
    submit.add_argument("video", metavar="VIDEO", help="the motion reference video (MP4/MOV)")
    submit.add_argument("--orientation", choices=("image", "video"),
                        help="character orientation from the image (video <= 10 s) or the video (<= 30 s)")
    submit.add_argument("--quality", choices=("std", "pro"),
                        help="std (720p) or pro (1080p; the API's default)")
    submit.add_argument("--prompt", help="text prompt (<= 2500 characters)")
    submit.add_argument("--negative-prompt", help="negative prompt (<= 2500 characters)")
    submit.add_argument("--no-sound", action="store_true", help="drop the reference video's sound")
    submit.add_argument("--provider", choices=PROVIDERS, help="force a provider (default: routing decides)")
    submit.add_argument("--webhook-url", help="https URL notified when the job ends")
    submit.add_argument("--metadata", type=_metadata, help="a JSON object echoed back on the job")
    submit.add_argument("--idempotency-key", help="Idempotency-Key header (default: a new one per run)")
    submit.add_argument("--wait", action="store_true", help="follow the job and download its video")
    # A str, not a Path: Path("out/") drops the trailing slash that says "a directory".
    submit.add_argument("--out", metavar="FILE",
                        help="where to write the video (a directory: <dir>/<job id>.mp4); implies --wait")
    submit.add_argument("--wait-timeout", type=_positive, metavar="SECONDS",
                        help="give up waiting after this long (the job goes on)")
    submit.add_argument("--poll-interval", type=_positive, default=POLL_SECONDS, help=argparse.SUPPRESS)
    submit.add_argument("--json", action="store_true", help="print the final job resource as JSON")
    submit.add_argument("--no-local-checks", action="store_true",
                        help="upload without checking the files here first (the API checks them anyway)")

    jobs = commands.add_parser("jobs", help="list, get or cancel your jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="{list,get,cancel}")
    listing = jobs_commands.add_parser("list", parents=[api_opts], help="your jobs, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, help="page size, 1-100 (default 20)")
    listing.add_argument("--cursor", help="next_cursor of the previous page")
    listing.add_argument("--json", action="store_true", help="print the page as JSON")
    get = jobs_commands.add_parser("get", parents=[api_opts], help="one job, as JSON")
    get.add_argument("job_id", metavar="ID")
    cancel = jobs_commands.add_parser("cancel", parents=[api_opts], help="cancel a queued or running job")
    cancel.add_argument("job_id", metavar="ID")
    cancel.add_argument("--json", action="store_true", help="print the canceled job as JSON")

    secret = commands.add_parser("webhook-secret", help="your tenant's whsec_ notification signing secret")
    secret_commands = secret.add_subparsers(dest="whsec_action", required=True, metavar="{get,rotate}")
    for name, text in (("get", "show the secret (created on first use)"),
                       ("rotate", "replace it; the old one still verifies for a grace period")):
        command = secret_commands.add_parser(name, parents=[api_opts], help=text)
        command.add_argument("--json", action="store_true", help="print the API's answer as JSON")

    listen = commands.add_parser(
        "listen", parents=[api_opts], help="receive and verify your job notifications on loopback",
        description="Start a receiver on 127.0.0.1 and print the URL to use as a job's webhook_url "
        "(the local stack accepts http:// loopback URLs). Each notification's Standard Webhooks "
        "signature is verified with your tenant's secret; one line per event: type, job, status, "
        "verified or not.",
        epilog="example:\n  motionrelay listen --forward-to http://127.0.0.1:8000/hooks\n"
        "  motionrelay submit samples/character.png samples/motion.mp4 --webhook-url http://127.0.0.1:PORT/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    listen.add_argument("--listen-port", type=int, default=0, metavar="PORT",
                        help="the receiver's port (default: a free one)")
    listen.add_argument("--forward-to", metavar="URL", help="re-post verified events (same body and "
                        "webhook-* headers) to this URL")
    listen.add_argument("--json", action="store_true", help="print each verified event as a JSON line")

    keys = commands.add_parser("keys", help="create, list or revoke API keys (in the stack's table)")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="{create,list,revoke}")
    create = keys_commands.add_parser("create", parents=[table_opts], help="a new key, printed once")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument("--name", default="", help="a label for people (e.g. 'ci')")
    list_keys = keys_commands.add_parser("list", parents=[table_opts],
                                         help="keys (ids and prefixes, never the keys themselves)")
    list_keys.add_argument("--tenant", help="only this tenant's keys")
    list_keys.add_argument("--json", action="store_true")
    revoke = keys_commands.add_parser("revoke", parents=[table_opts], help="revoke a key at once")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_..., from keys list)")
    return parser


# -- commands ---------------------------------------------------------------------------------


def make_api(args: argparse.Namespace, environ: Mapping[str, str] | None = None,
             transport: httpx.BaseTransport | None = None) -> Api:
    target = resolve_api(getattr(args, "url", None), getattr(args, "api_key", None), environ,
                         port=getattr(args, "port", None), choose=ask_which_stack())
    return Api(target.url, target.api_key, transport=transport)


def job_body(args: argparse.Namespace, image: str, video: str) -> dict[str, Any]:
    """The POST /v1/jobs body: only what was asked for, so the API's defaults apply to the rest."""
    body: dict[str, Any] = {"image": image, "video": video}
    optional = {
        "character_orientation": args.orientation, "quality": args.quality, "prompt": args.prompt,
        "negative_prompt": args.negative_prompt, "provider": args.provider, "webhook_url": args.webhook_url,
        "metadata": args.metadata,
    }
    body |= {k: v for k, v in optional.items() if v is not None}
    if args.no_sound:
        body["keep_original_sound"] = False
    return body


def output_path(out: str | Path | None, job: dict[str, Any]) -> Path:
    """`--out`: a file, or a directory (existing, or written with a trailing slash) that gets
    `<job id>.mp4`; without it, `<job id>.mp4` here."""
    ext = EXTENSIONS.get(((job.get("output") or {}).get("content_type") or "").split(";")[0], ".mp4")
    if out is None or str(out) == "":
        return Path.cwd() / f"{job['id']}{ext}"
    path = Path(out).expanduser()
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        path.mkdir(parents=True, exist_ok=True)
        return path / f"{job['id']}{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def wait_for(api: Api, job: dict[str, Any], progress: JobProgress, *, poll_interval: float,
             timeout: float | None, clock: Callable[[], float] | None = None,
             sleep: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Poll until the job is terminal, drawing each state; the TTY line also ticks between polls."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    started = clock()
    try:
        while True:
            progress.update(job, clock() - started)
            if job.get("status") in TERMINAL:
                return job
            elapsed = clock() - started
            if timeout is not None and elapsed >= timeout:
                raise CliError(f"job {job['id']} is still {job.get('status')} after {elapsed_text(elapsed)}; "
                               f"it goes on (motionrelay jobs get {job['id']})")
            next_poll = clock() + poll_interval
            while (left := next_poll - clock()) > 0:
                sleep(min(left, 0.2) if progress.tty else left)
                if progress.tty:
                    progress.update(job, clock() - started)
            job = api.poll_job(job["id"])
    finally:
        progress.end()


def submit(args: argparse.Namespace, api: Api, out: TextIO, err: TextIO, *,
           tty: bool | None = None) -> SubmitResult:
    """`motionrelay submit`: upload local inputs, create the job, and with --wait/--out follow
    it and download the video. Raises CliError/ApiError for anything that went wrong."""
    progress = JobProgress(err, tty)
    if not args.no_local_checks:
        from motionrelay_cli.checks import check_inputs

        check_inputs(args.image, args.video, orientation=args.orientation)  # silent when they pass
    image = api.input_value(args.image, progress.message)
    video = api.input_value(args.video, progress.message)
    job = api.create_job(job_body(args, image, video), args.idempotency_key)
    if not args.json:
        print(f"submitted {job['id']} ({job.get('status')}, provider {job.get('provider') or '-'}) "
              f"to {api.base_url}", file=out, flush=True)
    if not (args.wait or args.out):
        if args.json:
            print(json.dumps(job, indent=2), file=out)
        else:
            print(f"follow it with: motionrelay jobs get {job['id']}", file=out)
        return SubmitResult(job)
    try:
        job = wait_for(api, job, progress, poll_interval=args.poll_interval, timeout=args.wait_timeout)
    except KeyboardInterrupt:
        print(f"stopped waiting; {job['id']} goes on (motionrelay jobs get {job['id']})",
              file=err, flush=True)
        raise
    if job.get("status") != "succeeded":
        if args.json:
            print(json.dumps(job, indent=2), file=out)
        error = job.get("error") or {}
        raise CliError(f"job {job['id']} {job.get('status')}: {error.get('code', '?')}: "
                       f"{error.get('message', 'no details')}")
    target = output_path(args.out, job)
    shown = DownloadProgress(err, f"downloading {target.name}", tty)
    try:
        download = api.download(job, target, shown)
    finally:
        shown.end()
    if args.json:
        print(json.dumps(job, indent=2), file=out)
    else:
        size = f"{download.size_bytes} bytes = {size_text(download.size_bytes)}"
        print(f"wrote {_display(download.path)} ({size}, sha256 {download.sha256[:16]}... verified)",
              file=out, flush=True)
    return SubmitResult(job, download)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in [headers, *rows])


def jobs_list(args: argparse.Namespace, api: Api, out: TextIO) -> int:
    page = api.list_jobs(status=args.status, limit=args.limit, cursor=args.cursor)
    if args.json:
        print(json.dumps(page, indent=2), file=out)
        return 0
    rows = []
    for job in page.get("jobs") or []:
        progress = job.get("progress")
        rows.append([str(job.get("id")), str(job.get("status")), job.get("provider") or "-",
                     f"{progress}%" if isinstance(progress, int | float) else "-",
                     str(job.get("created_at") or "-")])
    print(_table(rows, ["ID", "STATUS", "PROVIDER", "PROGRESS", "CREATED"]) if rows else "no jobs", file=out)
    if page.get("next_cursor"):
        print(f"next page: motionrelay jobs list --cursor {page['next_cursor']}", file=out)
    return 0


def webhook_secret(args: argparse.Namespace, api: Api, out: TextIO, err: TextIO) -> int:
    if args.whsec_action == "rotate":
        body = api.request("POST", "/v1/webhook-secret/rotate")
    else:
        body = api.request("GET", "/v1/webhook-secret")
    if args.json:
        print(json.dumps(body, indent=2), file=out)
        return 0
    # The secret alone on stdout (SECRET=$(motionrelay webhook-secret get)); the rest on stderr.
    print(body.get("secret", ""), file=out, flush=True)
    note = f"created {body.get('created_at', '?')}"
    if body.get("previous_expires_at"):
        note += f"; the previous secret still verifies until {body['previous_expires_at']}"
    print(note, file=err)
    return 0


def dispatch(args: argparse.Namespace, *, out: TextIO, err: TextIO, environ: Mapping[str, str] | None,
             transport: httpx.BaseTransport | None) -> int:
    if args.command == "keys":
        return keys_cmd.run(args, environ, out, err)

    with make_api(args, environ, transport) as api:
        if args.command == "submit":
            submit(args, api, out, err)
            return 0
        if args.command == "webhook-secret":
            return webhook_secret(args, api, out, err)
        if args.command == "listen":
            from motionrelay_cli import listen

            return listen.run(api, out, err, port=args.listen_port, forward_to=args.forward_to,
                              json_output=args.json)
        if args.jobs_command == "list":
            return jobs_list(args, api, out)
        if args.jobs_command == "get":
            print(json.dumps(api.get_job(args.job_id), indent=2), file=out)
            return 0
        job = api.cancel_job(args.job_id)
        print(json.dumps(job, indent=2) if args.json else f"canceled {job.get('id')}", file=out)
        return 0


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
         environ: Mapping[str, str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return dispatch(args, out=out, err=err, environ=environ, transport=transport)
    except ConfigError as exc:
        print(f"motionrelay: {exc}", file=err)
        return 2
    except ApiError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except OSError as exc:  # a file that cannot be read or written
        print(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
