"""The options every command shares, and the parser that turns bad usage into
one line and exit 2."""

from __future__ import annotations

import argparse
import logging
import sys

from motionwatch.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError (exit 2, one line) instead of printing usage."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message} (see {self.prog} --help)")


def nonempty(text: str) -> str:
    """argparse type of options that name something: an empty value (a shell
    variable that was not set) is refused instead of meaning "not given", which
    would quietly record into ./recordings or under the default camera name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty value is not allowed; allowed: a non-empty value, "
                                         "or leave the option out for the default")
    return text


def common(p: argparse.ArgumentParser, source: bool = True) -> None:
    shared(p, top_level=False)
    if source:
        p.add_argument("--source", metavar="SRC", type=nonempty,
                       help="camera index, /dev/videoN, URL, video file, pipe:COMMAND, picamera2 or demo "
                            "(replaces the configured cameras)")
        p.add_argument("--camera", metavar="NAME", type=nonempty, help="camera name to record under")


def shared(p: argparse.ArgumentParser, top_level: bool) -> None:
    """The options every command takes, accepted before the command name too.

    The top-level parser holds the real defaults; a subcommand's copies default
    to SUPPRESS, so `motionwatch --debug events` is not undone by the subcommand."""
    def given(value):
        return value if top_level else argparse.SUPPRESS
    p.add_argument("--config", metavar="PATH", default=given(None), type=nonempty,
                   help="YAML config file (default: built-in defaults)")
    p.add_argument("--recordings", metavar="DIR", default=given(None), type=nonempty,
                   help="recordings folder (overrides recordings.path)")
    p.add_argument("-v", "--verbose", action="count", default=given(0), help="more log output")
    p.add_argument("-q", "--quiet", action="count", default=given(0), help="less log output")
    p.add_argument("--debug", action="store_true", default=given(False), help="show tracebacks")


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.INFO - 10 * getattr(args, "verbose", 0) + 10 * getattr(args, "quiet", 0)
    logging.basicConfig(level=max(logging.DEBUG, min(level, logging.CRITICAL)),
                        format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
