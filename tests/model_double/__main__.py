"""`python -m tests.model_double --port 8787`: serve the demo model until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from ._demo import demo_reply
from ._server import ModelDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.model_double",
        description="A stand-in for the Anthropic Messages API with a friendly demo behaviour.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    double = ModelDouble(args.host, args.port, max_recorded=50)
    double.set_default(demo_reply)
    done = threading.Event()
    # Install both explicitly: a job backgrounded by a script (make demo &) inherits
    # an ignored SIGINT, and SIGTERM should stop the server cleanly too.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with double:
        print(f"model double serving the demo on {double.url}", flush=True)
        print(f"  use ANTHROPIC_BASE_URL={double.url} ANTHROPIC_API_KEY=anything", flush=True)
        while not done.wait(1.0):  # a timed wait lets Python run the signal handlers
            pass
    print("model double stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
