"""Open N idle, welcomed connections and print the server's RSS before and after.

The same as ``scripts/bench.py --idle N --server-pid PID`` (which see), with
the one-line JSON this script always printed. The clients can offer
permessage-deflate the way a browser does (``--deflate``); the offer takes
effect only if the server accepts it. All connections are tabs of one user,
so the figure is per connection, no presence storm slows the run, and the
server's limit on new identities per address does not apply.
Usage, with the server's worker pid (``pgrep -P <hypercorn pid> -f spawn_main``):

    .venv/bin/python scripts/idle_rss.py --pid 1234 --count 1000 [--deflate]
"""

from __future__ import annotations

import argparse
import json

from benchlib import connections
from benchlib.config import parse_args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--pid", type=int, required=True, help="the server worker's pid")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes at a time")
    args = parser.parse_args()
    cfg = parse_args(
        [
            *("--idle", str(args.count), "--url", f"ws://{args.host}:{args.port}/ws"),
            *("--server-pid", str(args.pid), "--connect-concurrency", str(args.concurrency)),
            *(["--deflate"] if args.deflate else []),
        ]
    )
    server = connections.run(cfg)["server"]
    report = {
        "count": args.count,
        "deflate_offered": args.deflate,
        "rss_before_mib": server["rss_mb_before_connect"],
        "rss_after_mib": server["rss_mb_settled"],
        "kib_per_connection": server["kb_per_connection"],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
