"""`python -m benchmarks [--full] [--only encoder,load]`: each benchmark in its own process
(clean thread pools and memory), then benchmarks/results/summary.md."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks.summary import NAMES, write_summary

ORDER = ("encoder", "quality", "load", "catalog")  # quality reads the encoder's latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full grids (default: quick)")
    parser.add_argument("--only", default=",".join(ORDER), help=f"subset of {','.join(NAMES)}")
    args = parser.parse_args()
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(NAMES)}")
    failed = []
    for name in (n for n in ORDER if n in chosen):
        t0 = time.time()
        cmd = [sys.executable, "-m", f"benchmarks.{name}"] + (["--full"] if args.full else [])
        print(f"== {name} ({'full' if args.full else 'quick'})", flush=True)
        code = subprocess.call(cmd)
        print(f"== {name}: exit {code} after {time.time() - t0:.0f} s", flush=True)
        if code:
            failed.append(name)
    path = write_summary()
    print(f"summary: {path or 'no results'}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
