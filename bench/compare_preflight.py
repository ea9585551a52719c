"""trainlint beside torch-preflight on the same corpus: findings per overlapping bug class, how many
of each were reviewed true, and each tool's CPU time (user+sys of the child process and its
workers), both run cold in this one session.

    python -m venv /tmp/tpvenv && /tmp/tpvenv/bin/pip install torch-preflight==0.5.0
    python bench/compare_preflight.py CORPUS --preflight /tmp/tpvenv/bin/torch-preflight

Verdicts come from the reviewed files: bench/corpus_baseline.json (trainlint) and
bench/preflight_review.json (torch-preflight, each finding read by hand with its reason). A finding
with no verdict there is counted as unreviewed, never as true.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# bug class -> (trainlint codes, torch-preflight codes)
CLASSES = {
    "loop without zero_grad": (["TL203"], ["TG003"]),
    "softmax/sigmoid before a loss that applies it": (["TL302"], ["TG005", "TG006"]),
    "eval() without train()": (["TL102"], ["TG011"]),
    "retained graphs (loss kept, eval with grad)": (["TL303"], ["TG001", "TG002"]),
    "DDP loader without DistributedSampler": (["TL703"], ["TG012"]),
    "accumulation without loss division": (["TL209"], ["TG014"]),
}


def timed(command: list) -> tuple:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return run.stdout, cpu, wall


def relative(path: str, corpus: str) -> str:
    path = os.path.relpath(os.path.abspath(path), os.path.abspath(corpus))
    return path


def verdicts(path: str) -> dict:
    with open(path) as handle:
        findings = json.load(handle)["findings"]
    return {(f["code"], f["path"].lstrip("./"), f["line"]): f.get("verdict") for f in findings}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--preflight", default="torch-preflight", help="the torch-preflight executable")
    args = parser.parse_args()
    ours = [code for codes, _ in CLASSES.values() for code in codes]
    theirs = [code for _, codes in CLASSES.values() for code in codes]

    out, our_cpu, our_wall = timed([sys.executable, "-m", "trainlint", "check", args.corpus, "--no-cache",
                                    "--format", "json", "--select", ",".join(ours)])
    our_findings = [(f["code"], relative(f["path"], args.corpus), f["line"]) for f in json.loads(out)]
    out, their_cpu, their_wall = timed([args.preflight, "check", args.corpus, "-f", "json", "--select",
                                        ",".join(theirs)])
    their_findings = [(f["code"], relative(f["path"], args.corpus), f["line"]) for f in json.loads(out)["diagnostics"]]

    our_verdicts = verdicts(os.path.join(HERE, "corpus_baseline.json"))
    their_verdicts = verdicts(os.path.join(HERE, "preflight_review.json"))
    print("| bug class | trainlint (true / found) | torch-preflight (true / found) |")
    print("|---|---:|---:|")
    totals = [0, 0, 0, 0, 0, 0]
    for name, (our_codes, their_codes) in CLASSES.items():
        row = []
        for findings, codes, reviewed, offset in ((our_findings, our_codes, our_verdicts, 0),
                                                  (their_findings, their_codes, their_verdicts, 3)):
            mine = [f for f in findings if f[0] in codes]
            true = sum(1 for f in mine if reviewed.get(f) is True)
            unreviewed = sum(1 for f in mine if reviewed.get(f) is None)
            totals[offset] += true
            totals[offset + 1] += len(mine)
            totals[offset + 2] += unreviewed
            row.append(f"{true} / {len(mine)}" + (f" ({unreviewed} unreviewed)" if unreviewed else ""))
        print(f"| {name} ({', '.join(our_codes)} / {', '.join(their_codes)}) | {row[0]} | {row[1]} |")
    print(f"| **all** | **{totals[0]} / {totals[1]}** | **{totals[3]} / {totals[4]}** |")
    print()
    print(f"CPU s: trainlint {our_cpu:.1f} (wall {our_wall:.1f}), torch-preflight {their_cpu:.1f} "
          f"(wall {their_wall:.1f}); ratio {their_cpu / our_cpu:.1f}x")
    return 1 if totals[2] or totals[5] else 0


if __name__ == "__main__":
    sys.exit(main())
