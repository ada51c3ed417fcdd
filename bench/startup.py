"""Start-up cost of the `anygpt` command: each run in a fresh process, median of --repeats runs.

    python bench/startup.py [--repeats 3] [--bundle tiny]
    -> a table, then one JSON line {"anygpt --help": seconds, ..., "chat outside generation": seconds}

    anygpt --help, anygpt STAGE --help   parsers only: no torch, no transformers (tests/test_cli_startup.py)
    anygpt info --bundle B               loading the bundle and describing it
    anygpt chat --bundle B --text hi     one turn; "outside generation" is the wall time less the seconds
                                         the reply took as chat reports them with --json (generation
                                         and decoding the reply's media)

On a shared machine the timings are noisy: compare runs made side by side only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from anygpt.cli import STAGES


def _timed(argv: list[str]) -> tuple[float, str]:
    """Wall seconds of `python -m anygpt.cli ARGV` and its stdout."""
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "anygpt.cli", *argv], capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"anygpt {' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return seconds, result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bundle", default="tiny")
    args = parser.parse_args(argv)

    figures: dict[str, float] = {}
    helps = [["--help"], *([stage.name, "--help"] for stage in STAGES)]
    for command in helps:
        figures["anygpt " + " ".join(command)] = statistics.median(_timed(command)[0] for _ in range(args.repeats))
    info = ["info", "--bundle", args.bundle]
    figures["anygpt " + " ".join(info)] = statistics.median(_timed(info)[0] for _ in range(args.repeats))
    walls, outside = [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeats):
            wall, stdout = _timed(["chat", "--bundle", args.bundle, "--text", "hi", "--json", "--out", out])
            walls.append(wall)
            outside.append(wall - json.loads(stdout)["seconds"])
    figures[f"anygpt chat --bundle {args.bundle} --text hi"] = statistics.median(walls)
    figures["chat outside generation"] = statistics.median(outside)

    width = max(map(len, figures))
    print(f"{'command':{width}s}  seconds (median of {args.repeats})")
    for name, seconds in figures.items():
        print(f"{name:{width}s}  {seconds:7.3f}")
    print(json.dumps({name: round(seconds, 3) for name, seconds in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
