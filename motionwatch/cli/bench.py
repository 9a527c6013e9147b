"""`motionwatch bench [FILE]`: will this machine keep up? (the measuring is in
motionwatch.bench)."""

from __future__ import annotations

from pathlib import Path

from motionwatch.cli.args import common
from motionwatch.errors import ConfigError, SourceError

# The measuring code (statistics, subprocess, tempfile) loads only when `bench` runs:
# every command builds this parser, and those imports were a tenth of `--help`'s start.
DEFAULT_SIZE = "1280x720"


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measure decode-only vs full pipeline speed on this machine")
    p.add_argument("file", nargs="?", metavar="FILE", help="video to measure (default: a generated clip)")
    common(p, source=False)
    p.add_argument("--size", default=DEFAULT_SIZE, metavar="WxH",
                   help=f"size of the generated clip (default {DEFAULT_SIZE}; try 1920x1080 or 640x480)")
    p.add_argument("--seconds", type=float, default=20.0, metavar="S",
                   help="length of the generated clip in seconds (default 20)")
    p.add_argument("--rounds", type=int, default=3, metavar="N",
                   help="alternating rounds of each run; medians are printed (default 3)")
    p.set_defaults(func=cmd_bench)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        w = h = 0
    if not (64 <= w <= 7680 and 64 <= h <= 4320) or w % 2 or h % 2:
        raise ConfigError(f"--size: {text!r} is not allowed; allowed: WIDTHxHEIGHT, even numbers "
                          "64..7680 x 64..4320, e.g. 1920x1080")
    return w, h


def cmd_bench(args) -> int:
    if not 1 <= args.rounds <= 50:
        raise ConfigError(f"--rounds: {args.rounds} is out of range; allowed: 1..50")
    if not 1.0 <= args.seconds <= 3600:
        raise ConfigError(f"--seconds: {args.seconds:g} is out of range; allowed: 1..3600")
    import tempfile

    from motionwatch.bench import compare, describe, make_clip, print_report
    if args.config:
        from motionwatch.config import load_config
        load_config(args.config)  # a bad config is the user's to fix, before anything runs
    with tempfile.TemporaryDirectory(prefix="motionwatch-bench-") as tmp:
        if args.file:
            path = Path(args.file)
            if not path.is_file():
                raise SourceError(f"{args.file}: no such file")
            what = str(path)
        else:
            w, h = parse_size(args.size)
            path = Path(tmp) / f"bench-{w}x{h}.mp4"
            print(f"generating a {args.seconds:g} s {w}x{h} clip (textured room, noise, people walking)...",
                  flush=True)
            make_clip(path, w, h, args.seconds)
            what = f"generated {w}x{h} clip"
        info = describe(str(path))
        print(f"measuring {what}: {info}, {args.rounds} alternating round(s)", flush=True)
        res = compare(str(path), args.rounds, args.config, echo=lambda s: print(s, flush=True))
    print_report(res, info)
    return 0
