"""`trainlint trace`: run a training script for a few optimizer steps with instrumentation, then
report what the run showed, including a verdict for each static finding in the traced files.
Importing this package imports torch; `trainlint check` never does."""
from __future__ import annotations

import os
import site
import sys
import sysconfig
from typing import List, Optional

from ..config import find_pyproject, load
from ..engine import Engine
from ..rule import SEVERITIES, all_rules
from .checks import evidence, runtime_findings, verdicts
from .recorder import Recorder
from .runner import run

_LIBRARY_DIRS = tuple({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                       sysconfig.get_paths()["platlib"], *site.getsitepackages(), site.getusersitepackages()})
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_files(target: str, imported: List[str], module: bool) -> List[str]:
    """The traced script and the user modules it imported (not libraries, not trainlint)."""
    root = os.getcwd() if module else os.path.dirname(os.path.abspath(target))
    files = [] if module else [os.path.abspath(target)]
    for path in imported:
        if path.endswith(".py") and path.startswith(root + os.sep) and not path.startswith(_LIBRARY_DIRS) \
                and not path.startswith(_OWN_DIR) and path not in files:
            files.append(path)
    return files


def trace(target: str, args: List[str], steps: int = 8, timeout: Optional[float] = None,
          module: bool = False) -> dict:
    recorder = Recorder(steps)
    outcome = run(target, args, recorder, timeout, module)
    files = user_files(target, outcome.imported, module)
    config = load(find_pyproject(files[0] if files else os.getcwd()))
    static = Engine(config).lint(files) if files else []
    for finding in static:
        finding["abspath"] = os.path.abspath(finding["path"])
    found = evidence(recorder)
    findings = verdicts([f for f in static if f["code"] != "TL000"], found, recorder)
    rules = all_rules()
    for finding in findings:
        if finding["verdict"] == "runtime-only":
            finding.update(name=rules[finding["code"]].name, severity=rules[finding["code"]].severity)
    findings += runtime_findings(recorder)
    return {
        "steps": recorder.steps, "micro_batches": recorder.micro, "script_exit": outcome.script_exit,
        "exit_code": outcome.exit_code, "error": outcome.error, "findings": findings,
        "timeline": timeline(recorder),
    }


def timeline(recorder: Recorder) -> List[dict]:
    """Per micro-batch: its events, the loss, and per step the LR, the gradient norm of each
    optimizer group and how much the weights moved."""
    rows: List[dict] = [{"micro": i + 1, "loss": loss, "events": []} for i, loss in enumerate(recorder.loss_values)]
    step_rows = iter(recorder.step_stats)
    for event in recorder.events:
        if not rows:
            break
        # a backward opens micro-batch `micro`; what follows it belongs to that micro-batch
        index = event.micro if event.kind == "backward" else max(event.micro - 1, 0)
        row = rows[min(index, len(rows) - 1)]
        entry = {"kind": event.kind, "site": f"{os.path.basename(event.site[0])}:{event.site[1]}"}
        if event.kind == "step":
            stats = next(step_rows)
            entry.update(grad_norm=stats.grad_norm(), group_grad_norms=stats.group_grad_norms(),
                         update=stats.update(), lr=[float(lr) for lr in stats.lr if lr is not None])
        row["events"].append(entry)
    return rows


def failed(report: dict, fail_on: str) -> bool:
    threshold = SEVERITIES.index(fail_on)
    return any(SEVERITIES.index(f["severity"]) >= threshold for f in report["findings"]
               if f["verdict"] in (None, "confirmed", "runtime-only"))
