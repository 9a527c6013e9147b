"""Command line: argparse subcommands. The only place that turns exceptions
into one-line messages and exit codes (0 done, 1 runtime failure, 2 bad usage
or config), and that sets up logging."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from motionwatch import __version__
from motionwatch.config import CameraConfig, Config, load_config
from motionwatch.errors import ConfigError, MotionwatchError

log = logging.getLogger("motionwatch")


class _Parser(argparse.ArgumentParser):
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
    _shared(p, top_level=False)
    if source:
        p.add_argument("--source", metavar="SRC", type=nonempty,
                       help="camera index, /dev/videoN, URL, video file, pipe:COMMAND, picamera2 or demo "
                            "(replaces the configured cameras)")
        p.add_argument("--camera", metavar="NAME", type=nonempty, help="camera name to record under")


def _shared(p: argparse.ArgumentParser, top_level: bool) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    from motionwatch import commands
    parser = _Parser(prog="motionwatch", description="Live motion detector for cameras and video files.")
    parser.add_argument("--version", action="version", version=f"motionwatch {__version__}")
    _shared(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for register in commands.REGISTRY:
        register(sub)
    return parser


def effective_config(args: argparse.Namespace, default_name: str | None = None) -> Config:
    """Load --config and apply --recordings / --source / --camera on top."""
    cfg = load_config(getattr(args, "config", None))
    if getattr(args, "recordings", None):
        from motionwatch.config import Invalid, parse_folder
        try:
            parse_folder(args.recordings)
        except Invalid as e:
            raise ConfigError(f"--recordings: {args.recordings!r} is not allowed; allowed: {e}") from None
        cfg = replace(cfg, recordings=replace(cfg.recordings, path=args.recordings))
    src = getattr(args, "source", None)
    if src is not None:
        name = getattr(args, "camera", None) or default_name or camera_name_for(src)
        base = cfg.cameras[0] if cfg.cameras else CameraConfig()
        from motionwatch.config import Invalid, parse_name
        try:
            parse_name(name)
        except Invalid as e:
            raise ConfigError(f"--camera: {name!r} is not allowed; allowed: {e}") from None
        cfg = replace(cfg, cameras=(replace(base, name=name, source=src),))
    elif getattr(args, "camera", None):
        cams = [c for c in cfg.cameras if c.name == args.camera]
        if not cams:
            names = ", ".join(c.name for c in cfg.cameras)
            raise ConfigError(f"--camera: no camera named {args.camera!r}; configured: {names}")
        cfg = replace(cfg, cameras=tuple(cams))
    return cfg


def camera_name_for(source: str) -> str:
    """A readable default camera name for a source string."""
    import re
    from pathlib import Path
    from motionwatch.sources import source_kind
    kind = source_kind(source)
    if kind == "demo":
        return "demo"
    if kind == "file":
        stem = Path(source).stem
    elif kind == "camera":
        stem = "cam" + re.sub(r"\D", "", source) or "camera"
    elif kind == "stream":
        stem = re.sub(r"^[a-z]+://([^@/]*@)?", "", source.lower()).split("/")[0].split(":")[0]
    elif kind == "picamera2":
        stem = "-".join(source.split(":")[:2])   # picamera2, picamera2-1
    else:
        stem = "pipe"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "camera"
    if not stem[0].isalnum():
        stem = "c" + stem
    return stem[:64]


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.INFO - 10 * getattr(args, "verbose", 0) + 10 * getattr(args, "quiet", 0)
    logging.basicConfig(level=max(logging.DEBUG, min(level, logging.CRITICAL)),
                        format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
