"""`motionwatch tune SOURCE`: chart a source's motion and suggest detection settings
(the work is in the tune package)."""

from __future__ import annotations

from pathlib import Path

from motionwatch.cli.args import common, nonempty
from motionwatch.errors import ConfigError, MotionwatchError, SourceError

LIVE_SECONDS = 30.0


def add_tune(sub) -> None:
    p = sub.add_parser("tune", help="plot a source's changed fraction over time and suggest thresholds")
    p.add_argument("source_arg", metavar="SOURCE", type=nonempty,
                   help="video file, camera index, /dev/videoN, URL, pipe:COMMAND or demo")
    common(p, source=False)
    p.add_argument("--camera", metavar="NAME", type=nonempty,
                   help="use this configured camera's mask and detection overrides")
    p.add_argument("--seconds", type=float, metavar="N",
                   help=f"stop after N seconds of source time (live sources default to {LIVE_SECONDS:g})")
    p.add_argument("-o", "--out", metavar="PNG", type=nonempty, help="plot file (default: tune-<camera>.png)")
    p.set_defaults(func=cmd_tune)


def cmd_tune(args) -> int:
    # Imported here: `--help` and the light commands start without OpenCV or pydantic.
    import cv2
    from motionwatch.config.source_spec import source_kind
    from motionwatch.pipeline.preflight import check_masks, check_regular_file, check_seconds
    from motionwatch.tune.advice import advise, plot, replay_source, report
    check_seconds(args.seconds, "--seconds")
    if source_kind(args.source_arg) == "file":
        check_regular_file(args.source_arg, "tune")
    cfg = tune_config(args)
    check_masks(cfg)
    cam = cfg.cameras[0]
    out = args.out or f"tune-{cam.name}.png"
    if Path(out).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out: {out!r} is not allowed; allowed: a .png or .jpg file name")
    live = source_kind(args.source_arg) != "file"
    seconds = args.seconds if args.seconds is not None else (LIVE_SECONDS if live else None)
    trace = replay_source(cfg, args.source_arg, seconds)
    if not trace.ts:
        raise SourceError(f"{args.source_arg}: no frame could be read")
    advice = advise(trace, cfg)
    img = plot(trace, cfg, advice, title=f"{cam.name}: {args.source_arg}")
    if not cv2.imwrite(out, img):
        raise MotionwatchError(f"{out}: cannot write the plot (check the folder exists and is writable)")
    print(report(trace, cfg, advice, out))
    return 0


def tune_config(args):
    """The configured camera (by --camera, else the first) watching SOURCE. The
    built-in default camera (no cameras configured) is named after SOURCE, as `scan`
    names its cameras: `tune driveway.mp4` writes tune-driveway.png, not tune-demo.png."""
    from dataclasses import replace

    from motionwatch.config import CameraConfig
    from motionwatch.config.overrides import effective_config
    from motionwatch.config.source_spec import camera_name_for
    cfg = effective_config(args)   # --camera picks a configured camera (SOURCE is not --source)
    cam = cfg.cameras[0]
    name = camera_name_for(args.source_arg) if cam == CameraConfig() else cam.name
    return replace(cfg, cameras=(replace(cam, name=name, source=args.source_arg),))
