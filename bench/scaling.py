"""Cost of `check` as one function grows: a generated function with N gradient-accumulation loops
(the shape of a notebook exported to one file, or generated code), timed in one run for each N.

    python bench/scaling.py [--sizes 500 1000 2000] [--repeat 3]

Prints the median seconds per size and the ratio of the largest to the smallest; linear cost
gives a ratio equal to the size ratio (2,000 / 500 = 4), quadratic cost its square (16).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

LOOP = """\
    for i, (x, y) in enumerate(loader_{n}):
        loss = criterion(model(x), y) / accum
        loss.backward()
        if (i + 1) % accum == 0:
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
"""


def source(loops: int) -> str:
    return "def train(model, criterion, optimizer, scheduler, accum, **loaders):\n" + "".join(
        LOOP.format(n=n) for n in range(loops))


def timed(path: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "trainlint", "check", path, "--no-cache", "--isolated", "-j", "1"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = os.path.join(folder, f"loops_{size}.py")
            with open(path, "w") as handle:
                handle.write(source(size))
            results[size] = timed(path, args.repeat)
    print("| loops | lines | seconds (median) |\n|---:|---:|---:|")
    for size, seconds in results.items():
        print(f"| {size} | {7 * size + 1} | {seconds:.2f} |")
    small, large = min(results), max(results)
    print(f"\n{large} loops / {small} loops: {results[large] / results[small]:.2f}x the time for "
          f"{large / small:.0f}x the code")


if __name__ == "__main__":
    main()
