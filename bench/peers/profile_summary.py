"""Summarise a py-spy raw (collapsed stacks) profile of the nodedrop worker.

    BENCH_NODEDROP_PROFILE=/tmp/worker.raw BENCH_REDIS_DB=8 \\
        .venv/bin/python bench/peers/drivers/nodedrop_driver.py throughput --jobs 20000
    .venv/bin/python bench/peers/profile_summary.py /tmp/worker.raw [--top 25]

Prints the share of samples per function: self (the leaf frame) and
inclusive (anywhere on the stack, counted once per sample).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_SITE = re.compile(r" \(.*?/(site-packages|nodedrop)/")
_LINE = re.compile(r":\d+\)$")


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_SITE.sub(" (", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in {_LINE.sub(")", f) for f in frames}:
            inclusive[frame] += n
    return total, own, inclusive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, own, inclusive = summarise(args.profile)
    if not total:
        raise SystemExit("no samples in the profile")
    print(f"{total} samples")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"--- {title}")
        for frame, n in counter.most_common(args.top):
            print(f"{100.0 * n / total:5.1f}%  {frame[:140]}")


if __name__ == "__main__":
    main()
