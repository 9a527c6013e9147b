"""Review and live-view web UI (Starlette on uvicorn, plus static pages)."""

from __future__ import annotations


def start_for_run(cfg, loops):
    """Start the web UI inside `motionwatch run` (live view, status, review)."""
    from pathlib import Path

    from motionwatch.review.server import WebServer
    return WebServer(cfg, Path(cfg.recordings.path), loops=loops).start()
