"""Trace every fixture (buggy and fixed) on the current device, each in its own process as a
user would (`python -m trainlint trace --format json`), and print the verdicts; used to check the
tracer on a CUDA GPU (the CPU runs are in the test suite)."""
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
results = {}
for script in sorted(glob.glob(os.path.join(ROOT, "fixtures", "*", "*", "train.py"))):
    name = "/".join(script.split(os.sep)[-3:-1])
    done = subprocess.run([sys.executable, "-m", "trainlint", "trace", script, "--steps", "8", "--format", "json"],
                          capture_output=True, text=True, cwd=ROOT)
    report = json.loads(done.stdout)
    findings = sorted({(f["code"], f["verdict"] or "runtime") for f in report["findings"]})
    results[name] = {"script_exit": report["script_exit"], "steps": report["steps"], "findings": findings}
    print(f"{name}: {report['script_exit']}, {report['steps']} steps: "
          + ", ".join(f"{code} {verdict}" for code, verdict in findings))
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as handle:
        json.dump(results, handle, indent=1)
