"""`run --web [HOST:]PORT`: the live view without a config file."""

from __future__ import annotations

import re
from dataclasses import replace

from typing import TYPE_CHECKING

from motionwatch.errors import ConfigError

if TYPE_CHECKING:   # the config models cost pydantic's import, which `--help` need not pay
    from motionwatch.config import Config

_ADDRESS = re.compile(r"(?:(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?(?P<port>\d{1,5})")


def with_web(cfg: Config, address: str | None) -> Config:
    """cfg with the web UI enabled on `address` ("8765", "0.0.0.0:8765", "[::1]:8765");
    cfg unchanged when None."""
    if address is None:
        return cfg
    m = _ADDRESS.fullmatch(address.strip())
    port = int(m["port"]) if m else -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"--web: {address!r} is not allowed; allowed: [HOST:]PORT with PORT 0..65535 "
                          "(0 = any free port), e.g. 8765, 127.0.0.1:8765 or [::1]:8765")
    host = m["host"].strip("[]") if m["host"] else cfg.web.host
    return replace(cfg, web=replace(cfg.web, enabled=True, host=host, port=port))
