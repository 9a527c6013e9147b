"""`motionwatch serve`: the review UI over a recordings folder (no cameras)."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import replace
from pathlib import Path

from motionwatch.cli.args import common, nonempty
from motionwatch.errors import ConfigError, MotionwatchError

log = logging.getLogger("motionwatch.review")


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="browse recorded events in a web browser")
    common(p, source=False)
    p.add_argument("--host", metavar="H", type=nonempty, help="address to bind (default: web.host, 127.0.0.1)")
    p.add_argument("--port", type=int, metavar="P", help="TCP port (default: web.port, 8765; 0 = any free port)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    # Imported here: `--help` and the light commands start without pydantic or Starlette.
    from motionwatch.config.overrides import effective_config
    from motionwatch.review.server import WebServer
    cfg = effective_config(args)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: {args.port} is out of range; allowed: 0..65535 (0 = any free port)")
    if args.host:
        cfg = replace(cfg, web=replace(cfg.web, host=args.host))
    root = Path(cfg.recordings.path)
    if not root.is_dir():
        raise MotionwatchError(f"{root}: no recordings folder (record something with `motionwatch run` "
                               "or `scan`, or pass --recordings DIR)")
    server = WebServer(cfg, root, port=args.port).start()
    print(f"motionwatch: reviewing {root} at {server.url} (Ctrl-C stops)", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.wait(stop)
    finally:
        server.close()
    return 0
