"""Which files the web server may send (Starlette's FileResponse sends them, with Range).

Only two places hold servable files: the recordings root (event media, by a
relative path checked segment by segment and again after resolving symlinks:
the file reached must be a regular media file inside the root, never the
index) and the package's static folder (a fixed list read at start-up, so no
request text ever reaches the file system there).
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from urllib.parse import quote, unquote

from motionwatch.index.database import DB_NAME

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Event media a browser needs; never events.db, event.json or anything else.
MEDIA_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm",
    ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".mov": "video/quicktime",
}

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class Refused(Exception):
    """A request for a file outside what may be served (answered with 404)."""


def static_files() -> dict[str, tuple[Path, str]]:
    """name -> (path, content type) of every file shipped in web/static."""
    out = {}
    for p in sorted(STATIC_DIR.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype in ("application/javascript",):
                ctype += "; charset=utf-8"
            out[p.name] = (p, ctype)
    return out


def media_path(root: Path, raw: str) -> tuple[Path, str]:
    """The file a raw (still percent-encoded) path below /media/ names, with its
    content type; raises Refused for anything that is not an event media file
    inside `root`, however it is spelled."""
    # An encoded slash or backslash would let one "segment" hide a path step.
    if re.search(r"%(2f|5c|00)", raw, re.I) or "\\" in raw:
        raise Refused("encoded separator")
    rel = unquote(raw, errors="strict")
    parts = rel.split("/")
    if not parts or any(not _SEGMENT.fullmatch(p) for p in parts):
        raise Refused("bad segment")  # rejects '', '.', '..', dot-files and odd characters
    ctype = MEDIA_TYPES.get(Path(parts[-1]).suffix.lower())
    if ctype is None:
        raise Refused("not a media file")
    base = root.resolve()
    path = base.joinpath(*parts)
    try:
        real = path.resolve(strict=True)  # follows symlinks: they must stay inside too
    except (OSError, RuntimeError):
        raise Refused("missing") from None
    if base not in real.parents or not real.is_file():
        raise Refused("outside the recordings root")
    # A symlink named like a picture may point at the index (or its journal) or at
    # event.json: what is served is what the link resolves to, so check that too.
    if real.suffix.lower() not in MEDIA_TYPES or real.name.startswith(DB_NAME):  # also -wal, -shm
        raise Refused("not a media file")
    return real, ctype


def media_url(rel: str | None) -> str | None:
    """URL of a recordings-relative path from event.json (None stays None)."""
    if not isinstance(rel, str) or not rel:
        return None
    return "/media/" + quote(rel.replace("\\", "/"))
