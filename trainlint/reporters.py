"""Reporters only format findings; they decide nothing."""
from __future__ import annotations

import json
from collections import Counter
from typing import List

import click

_COLOURS = {"error": "red", "warning": "yellow", "info": "blue"}


def text(findings: List[dict]) -> str:
    lines = []
    for f in findings:
        location = click.style(f"{f['path']}:{f['line']}:{f['column']}:", bold=True)
        code = click.style(f["code"], fg=_COLOURS.get(f["severity"], "red"), bold=True)
        lines.append(f"{location} {code} {f['message']}")
    lines.append(summary_line(findings))
    return "\n".join(lines)


def summary_line(findings: List[dict]) -> str:
    if not findings:
        return click.style("All checks passed!", fg="green")
    counts = Counter(f["severity"] for f in findings)
    parts = [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in ("error", "warning", "info") if counts[s]]
    noun = "finding" if len(findings) == 1 else "findings"
    return f"Found {len(findings)} {noun} ({', '.join(parts)})."


def as_json(findings: List[dict]) -> str:
    return json.dumps(findings, indent=2)


FORMATS = {"text": text, "json": as_json}
