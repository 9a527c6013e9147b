"""Frame sources: one module per backend, all opened by `open_source(spec, options)`.

pyav: files, stream URLs and V4L2 cameras (everything FFmpeg opens); mjpeg:
MJPEG over HTTP without FFmpeg; pipe: a command's stdout; picamera2: the
Raspberry Pi camera; demo: the generated room.
"""

from __future__ import annotations

from motionwatch.sources.base import (URL_SCHEMES, FrameSource, LiveSource, SourceOptions, SourceStats,
                                      is_index, redact, source_kind)
from motionwatch.sources.demo import DemoSource

__all__ = ["FrameSource", "LiveSource", "SourceOptions", "SourceStats", "DemoSource", "open_source",
           "source_kind", "redact"]


def open_source(spec: str, options: SourceOptions | None = None, **kw) -> FrameSource:
    """Build and open the source a spec names; raises SourceError with what was tried.

    Keyword arguments are SourceOptions fields, for callers that set one or two."""
    options = options or SourceOptions(**kw)
    kind = source_kind(spec)
    if kind == "demo":
        src: FrameSource = DemoSource(spec, paced=not options.scan, options=options)
    elif kind == "pipe":
        from motionwatch.sources.pipe import PipeSource
        src = PipeSource(spec, options)
    elif kind == "picamera2":
        from motionwatch.sources.picamera2 import PicameraSource
        src = PicameraSource(spec, options)
    elif kind in ("camera", "stream"):
        from motionwatch.sources.pyav import AvLiveSource
        src, answer = None, ""
        if spec.lower().startswith(("http://", "https://")):
            # An MJPEG camera is read without FFmpeg (see sources.mjpeg); anything
            # else over HTTP (MPEG-TS, HLS, a file, Digest auth) goes to FFmpeg.
            from motionwatch.sources.mjpeg import probe
            src, answer = probe(spec, options.timeout, options)
        src = src or AvLiveSource(spec, options, answer)
    elif options.scan and options.decode_jobs >= 2:
        from motionwatch.sources.parallel import ParallelFileSource
        src = ParallelFileSource(spec, options)
    else:
        from motionwatch.sources.pyav import AvFileSource
        src = AvFileSource(spec, options)
    src.open()
    return src
