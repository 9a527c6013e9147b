"""Where the real camera footage lies: ../shared/footage beside the checkout,
never copied into the repository (its README.md gives each clip's licence)."""

from __future__ import annotations

from pathlib import Path

FOOTAGE = Path(__file__).resolve().parents[3] / "shared" / "footage"
