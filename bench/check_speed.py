"""Speed of `trainlint check` against its peers, measured in one run on the real-code corpus.

    python bench/check_speed.py CORPUS_DIR [--repeat 3] [--peer-repeat-whole 0] [--write bench/README.md]

CORPUS_DIR is what ../shared/corpus/fetch.sh downloads. Two file sets: the *training files*
(those containing `backward(`, `zero_grad(` or `optimizer.step(`) and the *whole corpus*. Each
tool runs as a child process on the same file list; CPU time is the children's user+sys time
(so multi-process tools are charged for every core they use), wall time is elapsed time. Every
number is the median of the repeats. Peers: plain LibCST `parse_module` of the same files (the
floor of any LibCST-based linter), TorchFix, Fixit (its default rules) and ruff (the speed of
light); missing peers are skipped and say so.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINING = re.compile(rb"backward\(|zero_grad\(|optimizer\.step\(")
LIBCST_PARSE = """
import sys, libcst
for path in open(sys.argv[1]).read().splitlines():
    with open(path, 'rb') as handle:
        data = handle.read()
    try:
        libcst.parse_module(data)
    except Exception:
        pass
"""


def python_files(root: str):
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def measure(command, repeat: int, env=None):
    """Median (cpu seconds, wall seconds) of running ``command`` ``repeat`` times."""
    cpu, wall = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(cpu), statistics.median(wall)


def tool(name: str):
    found = shutil.which(name, path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return found


def run_set(label, files, repeat, peer_repeat, workdir):
    listing = os.path.join(workdir, f"{label}.txt")
    with open(listing, "w") as handle:
        handle.write("\n".join(files))
    lines = sum(open(f, "rb").read().count(b"\n") for f in files)
    cache = os.path.join(workdir, f"cache-{label}")
    trainlint = [sys.executable, "-m", "trainlint", "check", "--isolated", "--format", "json"]
    rows = {}
    rows["libcst parse_module"] = measure([sys.executable, "-c", LIBCST_PARSE, listing], repeat)
    rows["trainlint check (cold, all cores)"] = measure(trainlint + ["--no-cache"] + files, repeat)
    rows["trainlint check (cold, 1 job)"] = measure(trainlint + ["--no-cache", "--jobs", "1"] + files, repeat)
    subprocess.run(trainlint + ["--cache-dir", cache] + files, stdout=subprocess.DEVNULL)
    rows["trainlint check (warm cache)"] = measure(trainlint + ["--cache-dir", cache] + files, repeat)
    if tool("ruff"):
        rows["ruff check"] = measure([tool("ruff"), "check", "--isolated", "--no-cache", "--exit-zero"] + files, repeat)
    if tool("torchfix") and peer_repeat:
        rows["TorchFix"] = measure([tool("torchfix")] + files, peer_repeat)
    if tool("fixit") and peer_repeat:
        rows["Fixit (default rules)"] = measure([tool("fixit"), "lint"] + files, peer_repeat)
    return {"files": len(files), "lines": lines, "rows": rows}


def single_file(files, repeat, workdir):
    """End-to-end latency of one ~700-line training file, as pre-commit or an editor sees it."""
    target = min(files, key=lambda f: abs(open(f, "rb").read().count(b"\n") - 700))
    command = [sys.executable, "-m", "trainlint", "check", "--isolated", "--no-cache", target]
    wall = []
    for _ in range(max(repeat, 5)):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL)
        wall.append(time.perf_counter() - start)
    return target, open(target, "rb").read().count(b"\n"), statistics.median(wall)


def table(result):
    base = result["rows"]["libcst parse_module"][0]
    out = [f"{result['files']} files, {result['lines']:,} lines", "",
           "| tool | CPU s (median) | wall s (median) | CPU ÷ LibCST parse |", "|---|---:|---:|---:|"]
    for name, (cpu, wall) in result["rows"].items():
        out.append(f"| {name} | {cpu:.2f} | {wall:.2f} | {cpu / base:.2f}× |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer-repeat-whole", type=int, default=0,
                        help="repeats of TorchFix/Fixit on the whole corpus (0: skip; one run takes ~30 minutes)")
    parser.add_argument("--write", help="replace the results section of this markdown file")
    args = parser.parse_args()
    everything = sorted(python_files(args.corpus))
    training = [f for f in everything if TRAINING.search(open(f, "rb").read())]
    with tempfile.TemporaryDirectory() as workdir:
        results = {
            "training files": run_set("training", training, args.repeat, args.repeat, workdir),
            "whole corpus": run_set("whole", everything, args.repeat, args.peer_repeat_whole, workdir),
        }
        target, lines, latency = single_file(training, args.repeat, workdir)
    report = [f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
              f"`python bench/check_speed.py CORPUS --repeat {args.repeat}`.", ""]
    for label, result in results.items():
        report += [f"### {label}", "", table(result), ""]
    cold = results["training files"]["rows"]["trainlint check (cold, all cores)"][0]
    warm = results["training files"]["rows"]["trainlint check (warm cache)"][0]
    report += [f"Warm re-run ÷ cold run (training files, CPU): {warm / cold:.1%}.",
               f"One file end to end ({os.path.relpath(target, args.corpus)}, {lines} lines): "
               f"{latency:.3f} s wall (median).", ""]
    text = "\n".join(report)
    print(text)
    print(json.dumps(results, indent=1), file=sys.stderr)
    if args.write:
        with open(args.write) as handle:
            page = handle.read()
        start, end = "<!-- results -->", "<!-- /results -->"
        page = page.split(start)[0] + start + "\n" + text + "\n" + end + page.split(end)[1]
        with open(args.write, "w") as handle:
            handle.write(page)


if __name__ == "__main__":
    main()
