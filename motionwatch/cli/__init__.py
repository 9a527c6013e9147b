"""Command line: argparse subcommands, one module each. The only place that turns
exceptions into one-line messages and exit codes (0 done, 1 runtime failure,
2 bad usage or config), and that sets up logging.

The command modules import the heavy libraries (OpenCV, PyAV, pydantic,
Starlette) inside their command functions, so `--help`, `--version` and the
parser itself start without them.
"""

from __future__ import annotations

import argparse
import os
import sys

from motionwatch import __version__
from motionwatch.cli.args import Parser, setup_logging, shared
from motionwatch.cli.bench import add_bench
from motionwatch.cli.check_config import add_check_config
from motionwatch.cli.events import add_events
from motionwatch.cli.exiting import leave
from motionwatch.cli.run import add_run
from motionwatch.cli.scan import add_scan
from motionwatch.cli.serve import add_serve
from motionwatch.cli.tune import add_tune
from motionwatch.errors import MotionwatchError

COMMANDS = [add_run, add_scan, add_events, add_check_config, add_serve, add_bench, add_tune]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="motionwatch", description="Live motion detector for cameras and video files.")
    parser.add_argument("--version", action="version", version=f"motionwatch {__version__}")
    shared(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for register in COMMANDS:
        register(sub)
    return parser


def console() -> None:
    """The `motionwatch` program and `python -m motionwatch`: the command, then exit."""
    leave(main())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # pydantic looks through every installed package's entry points for plugins when
    # the first config model is built: 5-10 ms of each command's start (up to a tenth of a
    # short scan's own work); motionwatch uses none. A user's setting is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        setup_logging(args)
        return int(args.func(args) or 0)
    except MotionwatchError as e:
        if debug:   # the traceback, and still the exit code scripts check (a bare raise exits 1)
            import traceback
            traceback.print_exc()
        print(f"motionwatch: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("motionwatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
