"""Every install line a user can copy works from a checkout.

motionwatch is not on the package index: `pip install 'motionwatch[mqtt]'`
fails today, and would install whatever someone registers under that name
tomorrow. So each `pip install` in the README, docs, config comments, CI
scripts and the package's own messages must name the checkout (`.`, a path)
or a real third-party package, never `motionwatch` itself.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIP_INSTALL = re.compile(r"pip3? install ([^`\n#;&|)]+)")


def _shipped_text_files() -> list[Path]:
    """What a user reads or runs: tracked text outside tests/ (tests quote the bad line on purpose)."""
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    out = []
    for name in names.split():
        path = REPO / name
        if name.startswith("tests/") or not path.is_file():
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue   # images, fonts
        out.append(path)
    return out


# Real packages the docs install into a venv of their own, never beside motionwatch:
# opencv-contrib ships its own `cv2` and clashes with opencv-python-headless, so it is
# no extra of ours (docs/detection.md: scoring GSOC and CNT).
BENCH_VENV_ONLY = {"opencv-contrib-python-headless"}


def _third_party() -> set[str]:
    """Packages motionwatch itself depends on, which pip may fetch by name."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in reqs} | {"pip"} | BENCH_VENV_ONLY


def _target(args: str) -> str:
    """What one `pip install` installs: its first argument that is not an option
    (prose may follow it on the line, as in "pip install X in the checkout")."""
    return next((w.strip("'\"") for w in args.split() if not w.startswith("-")), "")


def test_every_pip_install_line_works_from_a_checkout():
    files = _shipped_text_files()
    assert any(p.name == "README.md" for p in files) and any(p.suffix == ".py" for p in files)
    allowed = _third_party()
    bad = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in PIP_INSTALL.finditer(line):
                target = _target(m.group(1))
                from_checkout = target == "." or target.startswith((".[", "./", "/", "~/"))
                if not from_checkout and target.split("[")[0].lower() not in allowed:
                    bad.append(f"{path.relative_to(REPO)}:{n}: pip install {target}")
    assert not bad, "install lines that do not work from a checkout:\n" + "\n".join(bad)


def test_nothing_names_the_package_as_if_it_were_on_the_index():
    # Built so this file does not match itself.
    pattern = re.compile(r"(?<![\w./-])" + "motion" + r"watch\[")
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}"
            for p in _shipped_text_files()
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)

