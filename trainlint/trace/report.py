"""The trace report as text, JSON, or a self-contained HTML timeline."""
from __future__ import annotations

import html
import json
import math
import os

_VERDICT = {"confirmed": "confirmed", "refuted": "refuted", "not-observed": "not observed",
            "runtime-only": "runtime only", None: "runtime"}


def as_json(report: dict) -> str:
    """Strict JSON (`jq` rejects NaN): a non-finite number is null; TR005 says where it came from."""
    return json.dumps(_finite(report), indent=2, allow_nan=False)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def as_text(report: dict) -> str:
    lines = [f"trainlint trace: {report['steps']} optimizer steps, {report['micro_batches']} micro-batches, "
             f"script {report['script_exit']}"]
    if report.get("error"):
        lines += ["", "The script raised:", report["error"].rstrip()]
    order = {"confirmed": 0, "runtime-only": 1, None: 2, "refuted": 3, "not-observed": 4}
    for f in sorted(report["findings"], key=lambda f: (order[f["verdict"]], f["path"], f["line"])):
        where = f"{os.path.relpath(f['path'])}:{f['line']}:" if os.path.isabs(f["path"]) else f"{f['path']}:{f['line']}:"
        lines.append(f"{where} {f['code']} [{_VERDICT[f['verdict']]}] {f['message']}")
        if f.get("observed"):
            lines.append(f"    observed: {f['observed']}")
    lines.append(_conclusion(report))
    return "\n".join(lines)


def _conclusion(report: dict) -> str:
    if report.get("unchecked"):
        return f"Not checked: {report['unchecked']}."
    if not report["findings"]:
        return f"Nothing wrong was observed in {report['steps']} optimizer steps."
    return f"{len(report['findings'])} findings in {report['steps']} optimizer steps."


def as_html(report: dict) -> str:
    rows = report["timeline"]
    losses = [r["loss"] for r in rows if r["loss"] is not None and r["loss"] == r["loss"]]
    chart = _sparkline(losses)
    table = []
    for row in rows:
        events = "<br>".join(
            html.escape(f"{e['kind']} @ {e['site']}" + (f"  grad norm {e['grad_norm']:.4g}, lr {e['lr']}"
                                                        if e.get("grad_norm") is not None else ""))
            for e in row["events"])
        loss = "" if row["loss"] is None else f"{row['loss']:.6g}"
        table.append(f"<tr><td>{row['micro']}</td><td>{loss}</td><td>{events}</td></tr>")
    findings = "".join(
        f"<li><b>{html.escape(f['code'])}</b> [{html.escape(_VERDICT[f['verdict']])}] "
        f"{html.escape(os.path.basename(f['path']))}:{f['line']}: {html.escape(f['message'])}"
        + (f"<br><i>observed: {html.escape(f['observed'])}</i>" if f.get("observed") else "") + "</li>"
        for f in report["findings"])
    findings += f"<li>{html.escape(_conclusion(report))}</li>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>trainlint trace</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;vertical-align:top;font-family:monospace}}
li{{margin:.3em 0}}</style></head><body>
<h1>trainlint trace</h1>
<p>{report['steps']} optimizer steps, {report['micro_batches']} micro-batches, script {html.escape(report['script_exit'])}.</p>
<h2>Findings</h2><ul>{findings}</ul>
<h2>Loss per micro-batch</h2>{chart}
<h2>Timeline</h2>
<table><tr><th>micro-batch</th><th>loss</th><th>events</th></tr>{''.join(table)}</table>
</body></html>
"""


def _sparkline(values, width=600, height=120) -> str:
    if len(values) < 2:
        return "<p>(too few values to plot)</p>"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    points = " ".join(f"{i * width / (len(values) - 1):.1f},{height - (v - low) / span * height:.1f}"
                      for i, v in enumerate(values))
    return (f'<svg width="{width}" height="{height + 20}" viewBox="0 -10 {width} {height + 20}">'
            f'<polyline fill="none" stroke="#c33" stroke-width="2" points="{points}"/></svg>'
            f"<p>min {low:.6g}, max {high:.6g}</p>")


FORMATS = {"text": as_text, "json": as_json, "html": as_html}
