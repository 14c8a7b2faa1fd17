"""Profile one scenario with py-spy and print where its event loop spends its time.

    python -m benchmarks.profile ours.lateness \
        '{"jobs": 1000, "duration_s": 20, "log_level": "INFO"}'

The scenario runs in a child under `py-spy record` (sampling, so the figures are the real
process's, not an instrumented one's); the samples taken inside the event loop's callbacks are
aggregated by function: inclusive share (the function or anything it called) and self share.
Needs py-spy (`pip install py-spy`) and the right to trace a child (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.run import REPO

_FRAME = re.compile(r"(?P<fn>.*) \((?P<file>.*):\d+\)$")


def _frame(raw: str) -> str:
    match = _FRAME.match(raw)
    if match is None:
        return raw
    path = match["file"].split("site-packages/")[-1]
    for root in (str(REPO) + "/", "/tmp/"):
        path = path.removeprefix(root)
    return f"{match['fn']} ({path})"


def aggregate(lines: list[str], within: str) -> tuple[int, Counter[str], Counter[str]]:
    """Samples whose stack holds `within`, and the inclusive and self counts per function."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or within not in stack:
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    return total, inclusive, own


def main(argv: list[str] | None = None) -> int:
    """Record, aggregate and print the top functions."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("scenario", help="as for benchmarks.child, e.g. ours.lateness")
    parser.add_argument("params", help="the scenario's parameters as JSON")
    parser.add_argument("--rate", type=int, default=1000, help="samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--within", default="Handle._run", help="count stacks holding this")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        raw = args.raw or Path(tmp) / "stacks.txt"
        result = Path(tmp) / "result.json"
        child = [sys.executable, "-m", "benchmarks.child", args.scenario, args.params, str(result)]
        record = [py_spy, "record", "--rate", str(args.rate), "--format", "raw", "-o", str(raw)]
        subprocess.run([*record, "--", *child], cwd=REPO, check=True, capture_output=True)
        print(result.read_text(encoding="utf-8"))
        lines = raw.read_text(encoding="utf-8").splitlines()
    total, inclusive, own = aggregate(lines, args.within)
    print(f"{total} samples inside {args.within!r} (busy event loop callbacks)")
    print("inclusive:")
    for name, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("self:")
    for name, n in own.most_common(args.top // 2):
        print(f"  {100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
