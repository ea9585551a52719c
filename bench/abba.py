"""Cold `check` CPU time of an older commit against the working tree, in ABBA order, with ruff.

    python bench/abba.py OLD_COMMIT CORPUS [--blocks 2]

Each block runs ruff, old, new, ruff, new, old, ruff, so that the machine's drift falls on both
sides; the paired ratios compare each new run with the old run next to it. CPU time is user+sys
of the child and its workers.

The old commit is checked out in a git worktree and imported through PYTHONPATH, from a neutral
working folder: `python -m` puts the working folder first on sys.path (run from the repository
root, the "old" side imports the new code), and the editable install maps `trainlint.rules` to
this checkout's rules/ unless the old tree has a `trainlint/rules` of its own (a link is made).
Before timing, each side is asked which files it imports; the run stops if either is wrong.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHERE = "import trainlint, trainlint.rule as r; print(trainlint.__file__); print(r._rules_package().__path__[0])"


def old_tree(commit: str) -> str:
    tree = os.path.join(tempfile.gettempdir(), f"trainlint-old-{commit[:12]}")
    if not os.path.isdir(tree):
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, commit], check=True,
                       stdout=subprocess.DEVNULL)
    link = os.path.join(tree, "trainlint", "rules")
    if not os.path.lexists(link):
        os.symlink(os.path.join(tree, "rules"), link)
    return tree


def imports_from(env: dict, neutral: str) -> list:
    shown = subprocess.run([sys.executable, "-c", WHERE], env=env, cwd=neutral, capture_output=True, text=True,
                           check=True)
    return shown.stdout.split()


def cpu_seconds(command: list, env: dict, neutral: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, cwd=neutral, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("corpus")
    parser.add_argument("--blocks", type=int, default=1)
    args = parser.parse_args()
    corpus = os.path.abspath(args.corpus)
    tree = old_tree(args.old)
    neutral = tempfile.mkdtemp(prefix="abba-")
    new_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    old_env = dict(new_env, PYTHONPATH=tree)
    for env, expected in ((old_env, tree), (new_env, ROOT)):
        found = imports_from(env, neutral)
        if not all(path.startswith(expected + os.sep) for path in found):
            sys.exit(f"expected code under {expected}, imported {found}")
    check = [sys.executable, "-m", "trainlint", "check", corpus, "--no-cache", "-q"]
    ruff = shutil.which("ruff", path=os.path.dirname(sys.executable)) or "ruff"
    sides = {"ruff": ([ruff, "check", "--no-cache", "--isolated", "--exit-zero", "-q", corpus], new_env),
             "old": (check, old_env), "new": (check, new_env)}
    times = {side: [] for side in sides}
    order = []
    for block in range(args.blocks):
        for side in ("ruff", "old", "new", "ruff", "new", "old", "ruff"):
            seconds = cpu_seconds(*sides[side], neutral)
            times[side].append(seconds)
            order.append((side, seconds))
            print(f"block {block + 1} {side} {seconds:.2f}", flush=True)
    adjacent = [dict([first, second]) for first, second in zip(order, order[1:])]
    paired = [round(pair["new"] / pair["old"], 3) for pair in adjacent if set(pair) == {"old", "new"}]
    medians = {side: statistics.median(values) for side, values in times.items()}
    print(f"medians: ruff {medians['ruff']:.2f}, old {medians['old']:.2f}, new {medians['new']:.2f}")
    print(f"new / old, paired with the adjacent run: {paired} (median {statistics.median(paired):.3f})")
    print(f"new / ruff {medians['new'] / medians['ruff']:.1f}x, old / ruff {medians['old'] / medians['ruff']:.1f}x")


if __name__ == "__main__":
    main()
