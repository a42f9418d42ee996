"""Where a server's time goes: py-spy's raw output summed by function, as docs/performance.md shows.

Usage: profile.py RAW [TOP]. RAW is `py-spy record --format raw` output (one stack a
line, frames separated by `;`, then its sample count). Prints each function's share of
the samples with it anywhere on the stack (inclusive) and on top (self), largest first;
the event loop's wait for sockets and every other thread (aiosqlite's and the executor's,
idle while polling: a poll reads on the loop's own connection) are left out of the total,
so shares are of the event loop's work.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

IDLE = "Selector.select (selectors.py)"
OTHER_THREAD = "Thread._bootstrap (threading.py"
FRAME = re.compile(r"^(.*) \((.*?):\d+\)$")


def frames(stack: str) -> list[str]:
    """The stack's functions as `name (file)`, line numbers dropped so a function is one row."""
    named = []
    for frame in stack.split(";"):
        match = FRAME.match(frame)
        named.append(f"{match.group(1)} ({match.group(2)})" if match else frame)
    return named


def summary(raw: str, top: int = 40) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        named = frames(stack)
        if named[-1].endswith(IDLE) or named[0].startswith(OTHER_THREAD):
            continue  # waiting for the network, or another thread: not the loop's work
        samples = int(count)
        total += samples
        own[named[-1]] += samples
        for name in set(named):
            inclusive[name] += samples
    rows = [f"{total} samples of work", "inclusive  self  function"]
    for name, samples in inclusive.most_common(top):
        rows.append(f"{samples / total:8.1%} {own[name] / total:6.1%}  {name}")
    return "\n".join(rows)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]).read_text(), int(sys.argv[2]) if len(sys.argv) > 2 else 40))
