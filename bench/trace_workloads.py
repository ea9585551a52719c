"""Trace clean training workloads to their end and check that tracing changed nothing.

The workloads in bench/workloads/ are our own scripts in the styles of TrainCheck's clean
evaluation workloads (pytorch/examples: MNIST, ResNet, DCGAN, VAE, word language model,
time-sequence prediction, plus data-parallel ranks started by torch.multiprocessing.spawn), on
synthetic data. Each is run untraced and under `trainlint trace` with a step limit above what the
script takes, so both runs go to the end; each writes its final losses and weights to a JSON file.

    python bench/trace_workloads.py [--write bench/README.md]

A row passes when the traced run wrote exactly what the untraced one wrote, the report has no
error-level finding, and `trace` exited 0 (trained, checked, nothing wrong).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")
MARKER = "<!-- trace-workloads -->"


def run_workload(script: str, folder: str) -> dict:
    name = os.path.splitext(os.path.basename(script))[0]
    plain_out, traced_out = os.path.join(folder, f"{name}.plain.json"), os.path.join(folder, f"{name}.traced.json")
    started = time.perf_counter()
    subprocess.run([sys.executable, script, plain_out], check=True, capture_output=True)
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    traced = subprocess.run([sys.executable, "-m", "trainlint", "trace", script, "--steps", "100000",
                             "--format", "json", "--", traced_out], capture_output=True, text=True)
    traced_s = time.perf_counter() - started
    report = json.loads(traced.stdout)
    with open(plain_out) as a, open(traced_out) as b:
        same = json.load(a) == json.load(b)
    live = [f for f in report["findings"] if f["verdict"] in (None, "confirmed", "runtime-only")]
    ranks = report.get("ranks")
    return {
        "workload": name, "steps": report["steps"] if not ranks else "+".join(str(r["steps"]) for r in ranks),
        "micro": report["micro_batches"], "same": same, "exit": traced.returncode,
        "findings": ", ".join(sorted(f"{f['code']} ({f['severity']})" for f in live)) or "none",
        "errors": sum(f["severity"] == "error" for f in live), "unchecked": report.get("unchecked"),
        "plain_s": plain_s, "traced_s": traced_s,
    }


def table(rows) -> str:
    lines = ["| workload | steps traced | ends as untraced | findings | exit | wall s untraced / traced |",
             "|---|---:|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['steps']} | {'yes, bit for bit' if r['same'] else '**no**'} | "
                     f"{r['findings']} | {r['exit']} | {r['plain_s']:.1f} / {r['traced_s']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", help="replace the marked section of this markdown file")
    args = parser.parse_args()
    scripts = sorted(os.path.join(WORKLOADS, f) for f in os.listdir(WORKLOADS) if f.endswith(".py"))
    with tempfile.TemporaryDirectory() as folder:
        rows = [run_workload(script, folder) for script in scripts]
    text = (f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores, Python "
            f"{sys.version.split()[0]}; `python bench/trace_workloads.py`.\n\n{table(rows)}\n")
    print(text)
    if args.write:
        with open(args.write, encoding="utf-8") as handle:
            page = handle.read()
        before, _, rest = page.partition(MARKER)
        _, _, after = rest.partition(MARKER)
        with open(args.write, "w", encoding="utf-8") as handle:
            handle.write(f"{before}{MARKER}\n{text}{MARKER}{after}")
    failed = [r for r in rows if not r["same"] or r["errors"] or r["exit"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
