"""Output transfer: a 256 MB provider output, served by a local HTTP server, streamed into S3
(a moto server) by the transfer code (`transfer._copy`: netguard's checked stream, sniffing,
sha256, `blobs.stream_upload`), against boto3's own managed transfer (`upload_fileobj` with
its default TransferConfig) reading the same URL into the same bucket, in the same run.

Each copy runs in a fresh child process that reports its own peak RSS growth (ru_maxrss
after the copy minus before it, imports and clients already made) and the copy's time. The
variants alternate so a busy machine slows both alike; medians are compared.

Last line: `RESULT transfer <rss_mb> <time_ratio>` (goal <= 64 and <= 1.3).

    .venv/bin/python bench/transfer.py [--mb 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from harness import child_env, free_port, wait_for_port

SOURCE_PROC = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
size, port = int(sys.argv[1]), int(sys.argv[2])
HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
BLOCK = bytes(range(256)) * 4096  # 1 MiB of filler, streamed: nothing is held whole
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(HEAD)
        left = size - len(HEAD)
        while left > 0:
            n = min(left, len(BLOCK))
            self.wfile.write(BLOCK[:n])
            left -= n
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

VARIANT_PROC = r"""
import json, resource, sys, time
variant, url, key = sys.argv[1], sys.argv[2], sys.argv[3]
from motionrelay.infra.aws import client
from motionrelay.settings import get_settings
s3 = client("s3")
bucket = get_settings().bucket_name
if variant == "ours":
    from motionrelay import transfer
    from motionrelay.infra.netguard import guarded_client
    http = guarded_client(allow_loopback=True, timeout=60)
    def copy():
        return transfer._copy(url, key, http).size_bytes
else:
    import urllib.request
    def copy():
        with urllib.request.urlopen(url) as response:
            s3.upload_fileobj(response, bucket, key)  # default TransferConfig
        return s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
size = copy()
elapsed = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s3.delete_object(Bucket=bucket, Key=key)
print(json.dumps({"seconds": elapsed, "rss_mb": (after - before) / 1024, "size": size}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.mb * 1024 * 1024

    moto_port, source_port = free_port(), free_port()
    env = child_env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}", MOTIONRELAY_BUCKET="bench-media",
                    MOTIONRELAY_LOCAL="1",
                    MOTIONRELAY_MAX_OUTPUT_BYTES=str(size * 2),
                    POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    source = subprocess.Popen([sys.executable, "-c", SOURCE_PROC, str(size), str(source_port)], env=env)
    try:
        wait_for_port(moto_port)
        wait_for_port(source_port)
        subprocess.run([sys.executable, "-c", "from motionrelay.infra.aws import client; "
                        "client('s3').create_bucket(Bucket='bench-media')"], env=env, check=True)
        url = f"http://127.0.0.1:{source_port}/output.mp4"
        results: dict[str, list[dict]] = {"ours": [], "boto3": []}
        for round_ in range(args.rounds):
            for variant in ("ours", "boto3") if round_ % 2 == 0 else ("boto3", "ours"):
                command = [sys.executable, "-c", VARIANT_PROC, variant, url, f"outputs/{variant}.mp4"]
                out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                assert result["size"] == size, result
                results[variant].append(result)
                print(f"{variant:6s} {result['seconds']:6.2f} s  peak RSS growth {result['rss_mb']:6.1f} MB")
        ours = statistics.median(r["seconds"] for r in results["ours"])
        theirs = statistics.median(r["seconds"] for r in results["boto3"])
        rss = max(r["rss_mb"] for r in results["ours"])
        boto_rss = max(r["rss_mb"] for r in results["boto3"])
        print(f"{args.mb} MB: ours median {ours:.2f} s, boto3 upload_fileobj median {theirs:.2f} s "
              f"(ratio {ours / theirs:.2f}); peak RSS growth ours {rss:.1f} MB, boto3 {boto_rss:.1f} MB")
        print(f"RESULT transfer {rss:.1f} {ours / theirs:.2f}")
    finally:
        for proc in (source, moto):
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
