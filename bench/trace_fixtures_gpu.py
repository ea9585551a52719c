"""Trace every fixture (buggy and fixed) on the current device and print the verdicts; used to
check the tracer on a CUDA GPU (the CPU runs are in the test suite)."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from trainlint.trace import trace  # noqa: E402

import torch  # noqa: E402

print(f"device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
results = {}
for script in sorted(glob.glob(os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "*", "*", "train.py"))):
    name = "/".join(script.split(os.sep)[-3:-1])
    report = trace(script, [], steps=8)
    findings = sorted({(f["code"], f["verdict"] or "runtime") for f in report["findings"]})
    results[name] = {"script_exit": report["script_exit"], "steps": report["steps"], "findings": findings}
    print(f"{name}: {report['script_exit']}, {report['steps']} steps: "
          + ", ".join(f"{code} {verdict}" for code, verdict in findings))
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as handle:
        json.dump(results, handle, indent=1)
