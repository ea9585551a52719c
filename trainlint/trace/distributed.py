"""`trainlint trace -- torchrun [OPTIONS] SCRIPT [ARGS]`: every rank is traced (see rank.py) and
the per-rank reports are merged here; ranks that disagree on how many optimizer steps they took
are a finding of their own (TR010), and so are DDP replicas whose weights differ after a step
(TR011)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from typing import List, Optional


def is_launcher(target: str) -> bool:
    return os.path.basename(target) in ("torchrun", "torch.distributed.run")


def trace_torchrun(launcher: str, args: List[str], steps: int, timeout: Optional[float]) -> dict:
    script_at = next((i for i, arg in enumerate(args) if arg.endswith(".py")), None)
    if script_at is None:
        raise ValueError("no training script (*.py) in the torchrun command")
    command = [launcher, *args[:script_at], "-m", "trainlint.trace.rank", *args[script_at:]]
    with tempfile.TemporaryDirectory(prefix="trainlint-trace-") as folder:
        env = dict(os.environ, TRAINLINT_TRACE_DIR=folder, TRAINLINT_TRACE_STEPS=str(steps),
                   TRAINLINT_TRACE_TIMEOUT="" if timeout is None else str(timeout))
        completed = subprocess.run(command, env=env, stdout=sys.stderr, timeout=None if timeout is None else timeout + 120)
        reports = []
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                reports.append(json.load(handle))
    if not reports:
        raise ValueError(f"torchrun exited with {completed.returncode} and no rank reported")
    return merge(sorted(reports, key=lambda r: r["rank"]))


def merge(reports: List[dict]) -> dict:
    first = reports[0]
    findings, seen = [], set()
    for report in reports:
        for finding in report["findings"]:
            key = (finding["code"], finding["path"], finding["line"], finding["verdict"])
            if key not in seen:
                seen.add(key)
                findings.append(dict(finding, ranks=[r["rank"] for r in reports if any(
                    (f["code"], f["path"], f["line"], f["verdict"]) == key for f in r["findings"])]))
    counts = {r["rank"]: r["steps"] for r in reports}
    if len(set(counts.values())) > 1:
        behind = min(counts, key=counts.get)
        findings.append({"code": "TR010", "name": "rank-divergent-steps", "severity": "error",
                         "message": f"ranks took different numbers of optimizer steps ({counts}): rank {behind} "
                                    f"stepped when the others did not, so replicas drift apart",
                         "path": first["findings"][0]["path"] if first["findings"] else "", "line": 0,
                         "verdict": None, "ranks": sorted(counts)})
    drift = first_divergence(reports)
    if drift is not None and len(set(counts.values())) == 1:
        step, name, norms = drift
        findings.append({"code": "TR011", "name": "replica-divergence", "severity": "error",
                         "message": f"the DDP replicas' weights differ after optimizer step {step}: {name} has norm "
                                    + ", ".join(f"{norm:.6g} on rank {rank}" for rank, norm in norms.items())
                                    + " (a step taken without the gradient all-reduce, e.g. through the bare module)",
                         "path": first["findings"][0]["path"] if first["findings"] else "", "line": 0,
                         "verdict": None, "ranks": sorted(counts)})
    unchecked = [f"rank {r['rank']}: {r['unchecked']}" for r in reports if r.get("unchecked")]
    return {"steps": max(counts.values()), "micro_batches": first["micro_batches"],
            "script_exit": first["script_exit"], "exit_code": first["exit_code"], "error": first["error"],
            "unchecked": "; ".join(unchecked) or None,
            "tracer_error": next((r["tracer_error"] for r in reports if r.get("tracer_error")), None),
            "findings": findings, "timeline": first["timeline"],
            "ranks": [{k: r[k] for k in ("rank", "steps", "micro_batches", "script_exit")} for r in reports]}


_REPLICA_TOLERANCE = 1e-5  # relative: all-reduced replicas are bit-identical; this only absorbs float noise


def first_divergence(reports: List[dict]) -> Optional[tuple]:
    """(step, parameter, {rank: norm}) for the first optimizer step after which a DDP parameter's
    norm differs between ranks; None when they agree, or when the ranks' fingerprints cannot be
    compared (not DDP, different parameters)."""
    prints = [r.get("fingerprints") for r in reports]
    if len(prints) < 2 or any(p is None for p in prints):
        return None
    for step, rows in enumerate(zip(*prints), 1):
        if len({len(row) for row in rows}) != 1:
            return None
        for entries in zip(*rows):
            if len({name for name, _ in entries}) != 1:
                return None
            norms = [norm for _, norm in entries]
            if not all(math.isfinite(n) for n in norms):
                continue  # non-finite weights are TR005's finding
            if max(norms) - min(norms) > _REPLICA_TOLERANCE * max(max(abs(n) for n in norms), 1e-12):
                return step, entries[0][0], {r["rank"]: norm for r, (_, norm) in zip(reports, entries)}
    return None
