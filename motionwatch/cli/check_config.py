"""`motionwatch check-config`: every check `run` makes, the effective settings,
the JSON Schema, and a preview of a camera's mask."""

from __future__ import annotations

import sys
from pathlib import Path

from motionwatch.cli.args import common
from motionwatch.errors import SourceError

# What `--preview` reads as a still image rather than as a source.
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def add_check_config(sub) -> None:
    p = sub.add_parser("check-config", help="validate a config and print the effective settings")
    p.add_argument("path", nargs="?", metavar="PATH", help="config file (default: --config or built-ins)")
    common(p)
    p.add_argument("--preview", nargs=2, metavar=("FRAME_OR_SOURCE", "OUT_PNG"),
                   help="draw the camera's mask over an image or a source's first frame into OUT_PNG")
    p.add_argument("--schema", action="store_true",
                   help="print the config file's JSON Schema (for editors with a YAML language server)")
    p.set_defaults(func=cmd_check_config)


def cmd_check_config(args) -> int:
    # Imported here: `--help` and the light commands start without pydantic or OpenCV.
    from motionwatch.config import to_plain
    from motionwatch.config.overrides import effective_config
    from motionwatch.config.source_spec import redact, source_kind
    from motionwatch.pipeline.preflight import check_config, check_regular_file
    if args.schema:
        from motionwatch.config.render import schema_text
        sys.stdout.write(schema_text())
        return 0
    if args.path:
        args.config = args.path
    cfg = effective_config(args)
    check_config(cfg, source_flag=args.source is not None)   # exactly what `run` checks
    where = cfg.source_file or "built-in defaults"
    print(f"# {where}: OK")
    if args.preview:
        spec, out = args.preview
        if source_kind(spec) == "file":
            check_regular_file(spec, "--preview")
        from motionwatch.detect.masks import write_preview
        cam = cfg.cameras[0]
        base = Path(cfg.source_file).parent if cfg.source_file else None
        print(write_preview(cam, cfg.camera_detection(cam).width, preview_frame(spec), spec, out, base_dir=base))
        return 0
    plain = to_plain(cfg)
    for section in ("web", "mqtt"):  # settings are shown, secrets are not
        if plain[section].get("password"):
            plain[section]["password"] = "***"
    for cam in plain["cameras"]:
        cam["source"] = redact(cam["source"])
    import yaml
    print(yaml.safe_dump(plain, sort_keys=False, default_flow_style=None).rstrip())
    return 0


def preview_frame(spec: str):
    """One frame to draw on: an image file, or the first frame of any source."""
    import cv2
    from motionwatch.sources import open_source
    if Path(spec).suffix.lower() in IMAGE_EXTS:
        img = cv2.imread(spec, cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"{spec}: cannot read this image (PNG, JPEG, BMP, TIFF or WebP expected)")
        return img
    src = open_source(spec, scan=True)
    try:
        frame = src.read(timeout=10.0)
    finally:
        src.close()
    if frame is None:
        raise SourceError(f"{spec}: no frame could be read")
    return frame.image
