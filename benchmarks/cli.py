"""How long the command line takes, start to exit: `python -m benchmarks.cli`.

    .venv/bin/python -m benchmarks.cli               # 30 runs of each command after 3 warm-ups
    .venv/bin/python -m benchmarks.cli --runs 100 --markdown cli.md

Each command runs as a user runs it: the `financial` console script of this virtual
environment, in an empty temporary folder with nothing configured (no database, so `jobs list`
shows the jobs without their history, as on a laptop). Timed by hyperfine (Debian's package
`hyperfine`: `apt-get install hyperfine`) when it is on PATH, else by a loop of
`subprocess.run` here, with the same warm-up runs; the table names which one timed it. Wall time
per run, interpreter start-up included. `make bench` runs this as its `cli` scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Result

FINANCIAL = str(Path(sys.executable).with_name("financial"))
WARMUP = 3
# (label, arguments, target in ms or None): issue 15 asks for `schedule` and `--help` within 150.
COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("financial --help", ["--help"], 150.0),
    ('financial schedule "0 8 * * 1"', ["schedule", "0 8 * * 1"], 150.0),
    ("financial completion bash", ["completion", "bash"], None),
    ("financial jobs names", ["jobs", "names"], None),
    ("financial jobs list", ["jobs", "list"], None),
]


def _env(home: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}


def _with_hyperfine(argv: list[str], runs: int, folder: str) -> dict[str, float]:
    out = Path(folder) / "hyperfine.json"
    subprocess.run(
        ["hyperfine", "--shell=none", "--warmup", str(WARMUP), "--runs", str(runs),
         "--export-json", str(out), "--style", "none", shlex.join([FINANCIAL, *argv])],
        cwd=folder, env=_env(folder), check=True, capture_output=True, text=True,
    )  # fmt: skip
    result = json.loads(out.read_text())["results"][0]
    return {
        "mean_ms": result["mean"] * 1000,
        "stddev_ms": (result["stddev"] or 0.0) * 1000,
        "min_ms": result["min"] * 1000,
        "max_ms": result["max"] * 1000,
    }


def _with_a_loop(argv: list[str], runs: int, folder: str) -> dict[str, float]:
    took_ms: list[float] = []
    for i in range(WARMUP + runs):
        began = time.perf_counter()
        subprocess.run(
            [FINANCIAL, *argv], cwd=folder, env=_env(folder), check=True, capture_output=True
        )
        if i >= WARMUP:
            took_ms.append((time.perf_counter() - began) * 1000)
    return {
        "mean_ms": statistics.fmean(took_ms),
        "stddev_ms": statistics.stdev(took_ms) if len(took_ms) > 1 else 0.0,
        "min_ms": min(took_ms),
        "max_ms": max(took_ms),
    }


def measure(runs: int) -> Result:
    """Each command's wall time over `runs` runs, and which tool timed them."""
    tool = "hyperfine" if shutil.which("hyperfine") else "python"
    timed = _with_hyperfine if tool == "hyperfine" else _with_a_loop
    commands: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as folder:
        for label, argv, target_ms in COMMANDS:
            commands[label] = {**timed(argv, runs, folder), "target_ms": target_ms}
    return {"tool": tool, "runs": runs, "commands": commands}


async def startup(runs: int) -> Result:
    """The `cli` scenario of `python -m benchmarks` (run in a thread: it only waits)."""
    return await asyncio.to_thread(measure, runs)


def table(result: Result) -> list[str]:
    """The markdown table of a `measure` result."""
    lines = [
        "| command | mean ms | ± ms | min ms | max ms | target |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in result["commands"].items():
        target = r["target_ms"]
        verdict = "-" if target is None else (
            f"≤ {target:g} ms: {'met' if r['mean_ms'] <= target else '**missed**'}"
        )  # fmt: skip
        cells = [f"`{label}`"] + [
            f"{r[key]:.1f}" if not math.isnan(r[key]) else "-"
            for key in ("mean_ms", "stddev_ms", "min_ms", "max_ms")
        ]
        lines.append("| " + " | ".join([*cells, verdict]) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Time each command and print the table; exit 1 when a target was missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli", description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command (30)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    result = measure(args.runs)
    text = "\n".join(
        [f"Timed by {result['tool']}, {result['runs']} runs after {WARMUP} warm-ups.", "",
         *table(result)]
    )  # fmt: skip
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    missed = [
        label
        for label, r in result["commands"].items()
        if r["target_ms"] is not None and r["mean_ms"] > r["target_ms"]
    ]
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
