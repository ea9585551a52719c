"""`trainlint trace`: run a training script for a few optimizer steps with instrumentation, then
report what the run showed, including a verdict for each static finding in the traced files.
Importing this package imports torch; `trainlint check` never does."""
from __future__ import annotations

import os
import site
import sysconfig
from typing import Dict, List, Optional, Set

from ..config import find_pyproject, load
from ..engine import Engine
from ..rule import SEVERITIES, all_rules
from .checks import (
    LINE_EVIDENCE, evidence, line_evidence, lines_against, replica_fingerprints, runtime_findings, sites_that_ran,
    verdicts,
)
from .distributed import merge
from .lines import LineCounter
from .recorder import Recorder
from .runner import run
from .spawn import following_spawn

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
    lines = LineCounter({} if module else line_targets(target), lambda: recorder.micro)
    with following_spawn(steps, timeout) as workers:
        outcome = run(target, args, recorder, timeout, module, lines)
    files = user_files(target, outcome.imported, module)
    config = load(find_pyproject(files[0] if files else os.getcwd()))
    static = Engine(config).lint(files) if files else []
    static = [dict(f, abspath=os.path.abspath(f["path"])) for f in static if f["code"] != "TL000"]
    recorder.untraced_processes = workers.untraced
    own = conclude(observe(recorder, outcome, lines), static)
    if not workers.observations:
        return own
    reports = [conclude(observation, static) for observation in workers.observations]
    merged = merge(sorted(reports, key=lambda r: r["rank"]))
    merged.update(script_exit=own["script_exit"], exit_code=own["exit_code"], error=own["error"] or merged["error"])
    if own["tracer_error"] or own["script_exit"] == "exception":
        merged["unchecked"] = "; ".join(filter(None, [f"the launching process: {own['unchecked']}",
                                                      merged["unchecked"]]))
    return merged


def line_targets(target: str) -> Dict[str, Dict[int, Set[str]]]:
    """The lines whose running is the evidence for a static finding (LINE_EVIDENCE rules), in the
    script and the Python files beside it, found before the run."""
    folder = os.path.dirname(os.path.abspath(target))
    paths = sorted({os.path.abspath(target)} | {os.path.join(folder, name) for name in os.listdir(folder)
                                                  if name.endswith(".py")})
    config = load(find_pyproject(target))
    targets: Dict[str, Dict[int, Set[str]]] = {}
    for finding in Engine(config).lint(paths):
        if finding["code"] in LINE_EVIDENCE:
            lines = targets.setdefault(os.path.abspath(finding["path"]), {})
            lines.setdefault(finding["line"], set()).add(finding["code"])
    return targets


def observe(recorder: Recorder, outcome, lines: Optional[LineCounter] = None) -> dict:
    """What one traced process saw, as plain data (a spawned worker sends it to its parent)."""
    found = evidence(recorder)
    if lines is not None:
        for code, items in line_evidence(recorder, lines).items():
            found[code] = items + found.get(code, [])  # what ran, said first
    ran = sites_that_ran(recorder)
    if lines is not None:
        ran.update(lines_against(recorder, lines))
    missing = unchecked(recorder, outcome)
    if lines is not None and lines.lines and lines.off:
        missing = "; ".join(filter(None, [missing, f"line evidence was off ({lines.off})"]))
    return {
        "steps": recorder.steps, "micro_batches": recorder.micro, "script_exit": outcome.script_exit,
        "exit_code": outcome.exit_code, "error": outcome.error,
        "evidence": {code: [[site[0], site[1], message] for site, message in items] for code, items in found.items()},
        "runtime": runtime_findings(recorder),
        "ran": {kind: sorted([list(site) for site in sites]) for kind, sites in ran.items()},
        "unchecked": missing, "tracer_error": recorder.broken, "timeline": timeline(recorder),
        "fingerprints": replica_fingerprints(recorder),
    }


def conclude(observation: dict, static: List[dict]) -> dict:
    """The report of one process: its runtime findings and a verdict for each static finding."""
    found = {code: [((path, line), message) for path, line, message in items]
             for code, items in observation["evidence"].items()}
    ran = {kind: {tuple(site) for site in sites} for kind, sites in observation["ran"].items()}
    findings = verdicts(static, found, ran)
    rules = all_rules()
    for finding in findings:
        if finding["verdict"] == "runtime-only":
            finding.update(name=rules[finding["code"]].name, severity=rules[finding["code"]].severity)
    report = {key: value for key, value in observation.items() if key not in ("evidence", "runtime", "ran")}
    report["findings"] = findings + observation["runtime"]
    return report


def unchecked(recorder: Recorder, outcome) -> Optional[str]:
    """What the run did not let the tracer check, or None when the script trained and ended as
    it would untraced. "Nothing wrong" is said only when this is None."""
    if recorder.broken is not None:
        return (f"the tracer failed after {recorder.steps} optimizer steps and stood aside (a trainlint bug, "
                f"its traceback is on stderr): what ran after that was not checked")
    if recorder.steps == 0:
        if outcome.script_exit == "exception":
            return "the script failed before its first optimizer step: nothing was checked"
        if outcome.script_exit == "timeout":
            return "the time limit came before the first optimizer step: nothing was checked"
        if recorder.untraced_processes:
            return (f"no optimizer step ran in this process, and {recorder.untraced_processes} child processes "
                    f"that trainlint does not follow were started: nothing was checked")
        return "no optimizer step ran: nothing was checked"
    if outcome.script_exit == "exception":
        return f"the script failed after {recorder.steps} optimizer steps: only those were checked"
    if outcome.exit_code not in (None, 0):
        return f"the script exited with code {outcome.exit_code} after {recorder.steps} optimizer steps"
    return None


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


UNCHECKED_EXIT = 3  # nothing (or not everything) was checked, and nothing at --fail-on was found


def exit_code(report: dict, fail_on: str) -> int:
    """1 for findings at or above ``fail_on``; else 3 when the run left something unchecked; else 0."""
    threshold = SEVERITIES.index(fail_on)
    if any(SEVERITIES.index(f["severity"]) >= threshold for f in report["findings"]
           if f["verdict"] in (None, "confirmed", "runtime-only")):
        return 1
    return UNCHECKED_EXIT if report.get("unchecked") else 0
