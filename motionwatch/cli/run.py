"""`motionwatch run`: watch live sources until Ctrl-C or --duration."""

from __future__ import annotations

import threading

from motionwatch.cli.args import common
from motionwatch.cli.memory import limit_arenas, release_fresh_library_pages
from motionwatch.cli.signals import install_signals
from motionwatch.cli.web_option import with_web


def add_run(sub) -> None:
    p = sub.add_parser("run", help="watch live sources until Ctrl-C or --duration")
    common(p)
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--web", metavar="[HOST:]PORT", help="serve the live and review web UI there (web.enabled)")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    # Imported here, not at the top: `--help` and the light commands start without
    # OpenCV, PyAV, pydantic or Starlette (see docs/performance.md); and the libraries'
    # pages can be released only before they are mapped.
    release_fresh_library_pages()
    from motionwatch.config.overrides import effective_config
    from motionwatch.pipeline.preflight import check_config, check_seconds
    from motionwatch.pipeline.runtime import Runtime
    from motionwatch.review import start_for_run
    limit_arenas()
    cfg = with_web(effective_config(args), args.web)
    check_seconds(args.duration, "--duration")
    check_config(cfg, source_flag=args.source is not None)
    stop = threading.Event()
    web = [lambda loops: start_for_run(cfg, loops)] if cfg.web.enabled else []
    runtime = Runtime(cfg, stop, services=web)
    runtime.start()
    install_signals(stop)
    runtime.wait(args.duration)
    runtime.close()
    return 0
