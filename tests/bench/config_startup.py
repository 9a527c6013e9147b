"""What the config models cost at start-up: `check-config` of the default file, and
importing the config package, against a bare interpreter start, measured in one run;
and what the commands that need no model pay (`--help`, `events` of an empty folder).

    python tests/bench/config_startup.py [OTHER_CHECKOUT] [--runs N]

OTHER_CHECKOUT (e.g. an export of an older commit) is timed alternately with this one
on the same commands, so the ratio between them is not skewed by a busy machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "import motionwatch.config": ["-c", "import motionwatch.config"],
    "check-config default file": ["-m", "motionwatch", "check-config", "config/motionwatch.yaml"],
    "motionwatch --help": ["-m", "motionwatch", "--help"],
    "events (empty folder)": ["-m", "motionwatch", "events", "--recordings", "{empty}"],
}


def _once(checkout: Path, args: list[str], empty: str) -> float:
    args = [a.replace("{empty}", empty) for a in args]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=checkout, env={"PYTHONPATH": str(checkout)},
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", nargs="?", type=Path, help="another checkout to compare with")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    checkouts = {"this": HERE} | ({"other": args.other.resolve()} if args.other else {})
    times = {(c, k): [] for c in checkouts for k in COMMANDS}
    with tempfile.TemporaryDirectory() as empty:
        for _ in range(args.runs):   # alternate, so load changes hit every column alike
            for c, path in checkouts.items():
                for k, cmd in COMMANDS.items():
                    times[(c, k)].append(_once(path, cmd, empty))
    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"median of {args.runs} runs; ratio = time / 'python -c pass' of the same checkout")
    for k in COMMANDS:
        row = [f"{k:28s}"]
        for c in checkouts:
            row.append(f"{c}: {med[(c, k)] * 1000:6.0f} ms ({med[(c, k)] / med[(c, 'python -c pass')]:.2f}x)")
        if args.other:
            row.append(f"this/other: {med[('this', k)] / med[('other', k)]:.2f}")
        print("  ".join(row))


if __name__ == "__main__":
    main()
