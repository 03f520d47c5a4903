#!/usr/bin/env python3
"""Sums a call-graph profile by function: the share of samples whose stack holds each one.

    perf script -i PROFILE | scripts/perf-inclusive.py [--thread PREFIX] [--under FUNCTION] [N]

--thread counts only the samples of threads whose name matches PREFIX, a regular expression
from the name's start (request workers: `tokio`; the audit writer: `keyhold-audit$`; the
indexer: `keyhold-audit-i`; names are cut to 15 characters).
--under counts, within samples whose stack holds FUNCTION (a substring), only the frames
it called. Shares are of all the samples counted; also printed: samples by thread.
"""
import argparse
import collections
import re
import sys


def stacks(lines):
    """(thread, frames leaf first) per sample of `perf script` output."""
    thread, frames = None, []
    for line in lines:
        if not line.strip():
            if thread is not None:
                yield thread, frames
            thread, frames = None, []
        elif not line[0].isspace():
            thread = line.split()[0]
        else:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                name = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].split(" (")[0])
                frames.append(re.sub(r"::h[0-9a-f]{16}$", "", name))
    if thread is not None:
        yield thread, frames


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--thread", default="")
    parser.add_argument("--under")
    parser.add_argument("n", nargs="?", type=int, default=60)
    args = parser.parse_args()
    inclusive, threads, total = collections.Counter(), collections.Counter(), 0
    for thread, frames in stacks(sys.stdin):
        if not re.match(args.thread, thread):
            continue
        total += 1
        threads[thread] += 1
        if args.under is not None:
            at = [i for i, f in enumerate(frames) if args.under in f]
            if not at:
                continue
            frames = frames[: at[-1]]
        for frame in set(frames):
            inclusive[frame] += 1
    if total == 0:
        sys.exit("no samples")
    print(f"{total} samples")
    for thread, n in threads.most_common(8):
        print(f"{100 * n / total:6.1f}%  thread {thread}")
    for frame, n in inclusive.most_common(args.n):
        print(f"{100 * n / total:6.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main()
