"""moto's server in a process of its own, for one local stack: `python -m motionrelay_local.moto_process`.

AWS is not inside the function's process, and neither is its stand-in here: each stack gets
its own moto backends (two stacks in one test session cannot see or reset each other's
tables), and moto's CPU time is not spent under the caller's GIL. DynamoDB writes are made
atomic first (`moto_atomic`). Prints `port <n>` once listening; stops when stdin closes.
"""

from __future__ import annotations

import logging
import os
import sys


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request at INFO
    # moto answers every origin by default; S3 then applies the bucket's own CORS rules, as AWS does.
    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"
    from moto.server import ThreadedMotoServer

    from motionrelay_local.moto_atomic import make_dynamodb_writes_atomic

    make_dynamodb_writes_atomic()  # DynamoDB's conditional writes are atomic; moto's are not
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    print(f"port {server.get_host_and_port()[1]}", flush=True)
    sys.stdin.read()  # until the stack closes our stdin (or dies)
    server.stop()


if __name__ == "__main__":
    main()
