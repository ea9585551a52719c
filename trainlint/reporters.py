"""Reporters only format findings; they decide nothing."""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Dict, List
from xml.etree import ElementTree

import click

from . import HOMEPAGE, __version__, rule_url

_COLOURS = {"error": "red", "warning": "yellow", "info": "blue"}
_SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_LEVELS = {"error": "error", "warning": "warning", "info": "notice"}
_LSP_SEVERITIES = {"error": 1, "warning": 2, "info": 3}


def location(finding: dict) -> str:
    cell = f"cell {finding['cell']}:" if finding.get("cell") else ""
    return f"{finding['path']}:{cell}{finding['line']}:{finding['column']}:"


def text(findings: List[dict]) -> str:
    lines = []
    for f in findings:
        code = click.style(f["code"], fg=_COLOURS.get(f["severity"], "red"), bold=True)
        lines.append(f"{click.style(location(f), bold=True)} {code} {f['message']}")
    lines.append(summary_line(findings))
    return "\n".join(lines)


def statistics(findings: List[dict], output_format: str) -> str:
    """Counts per code, most frequent first (ruff's --statistics); JSON for --format json."""
    counts = Counter((f["code"], f["name"]) for f in findings)
    fixable = Counter(f["code"] for f in findings if f.get("fix") and f["fix"]["safe"])
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0][0]))
    if output_format == "json":
        return json.dumps([{"code": code, "name": name, "count": count, "fixable": fixable[code]}
                           for (code, name), count in rows], indent=2)
    width = max((len(str(count)) for count in counts.values()), default=1)
    lines = [f"{count:>{width}}  {code}  {'[*] ' if fixable[code] else ''}{name}" for (code, name), count in rows]
    return "\n".join(lines + [summary_line(findings)])


def summary_line(findings: List[dict]) -> str:
    if not findings:
        return click.style("All checks passed!", fg="green")
    counts = Counter(f["severity"] for f in findings)
    parts = [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in ("error", "warning", "info") if counts[s]]
    noun = "finding" if len(findings) == 1 else "findings"
    fixable = sum(1 for f in findings if f.get("fix") and f["fix"]["safe"])
    unsafe = sum(1 for f in findings if f.get("fix") and not f["fix"]["safe"])
    hint = f" [*] {fixable} fixable with --fix." if fixable else ""
    hint += f" {unsafe} more with --fix --unsafe-fixes." if unsafe else ""
    return f"Found {len(findings)} {noun} ({', '.join(parts)}).{hint}"


def as_json(findings: List[dict]) -> str:
    return json.dumps(findings, indent=2)


def sarif(findings: List[dict]) -> str:
    """SARIF 2.1.0: one run, the driver lists every rule, a result per finding."""
    from .rule import all_rules

    rules = list(all_rules().values())
    index = {rule.code: i for i, rule in enumerate(rules)}
    driver_rules = [{
        "id": rule.code, "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.explain()},
        "helpUri": rule_url(rule.code),
        "defaultConfiguration": {"level": _SARIF_LEVELS[rule.severity]},
    } for rule in rules]
    results = []
    for f in findings:
        result = {
            "ruleId": f["code"], "level": _SARIF_LEVELS[f["severity"]], "message": {"text": f["message"]},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f["path"].replace(os.sep, "/")},
                "region": {"startLine": f["line"], "startColumn": f["column"], "endLine": f["end_line"],
                           "endColumn": f["end_column"]},
            }}],
        }
        if f["code"] in index:
            result["ruleIndex"] = index[f["code"]]
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "trainlint", "version": __version__, "informationUri": HOMEPAGE,
                                      "rules": driver_rules}},
                  "results": results}],
    }
    return json.dumps(log, indent=2)


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github(findings: List[dict]) -> str:
    """GitHub Actions workflow commands: one annotation per finding."""
    lines = []
    for f in findings:
        properties = ",".join([
            # GitHub matches annotations to files by their path from the repository root: no "./"
            f"file={_escape_property(os.path.normpath(f['path']))}", f"line={f['line']}", f"col={f['column']}",
            f"endLine={f['end_line']}", f"endColumn={f['end_column']}",
            f"title={_escape_property(f['code'] + ' ' + f['name'])}",
        ])
        lines.append(f"::{_GITHUB_LEVELS[f['severity']]} {properties}::{_escape_data(f['message'])}")
    return "\n".join(lines)


def junit(findings: List[dict]) -> str:
    """JUnit XML: a test suite per file, a failed test case per finding."""
    by_path: Dict[str, List[dict]] = {}
    for f in findings:
        by_path.setdefault(f["path"], []).append(f)
    suites = ElementTree.Element("testsuites", name="trainlint", tests=str(len(findings)),
                                 failures=str(len(findings)))
    for path, items in sorted(by_path.items()):
        suite = ElementTree.SubElement(suites, "testsuite", name=path, tests=str(len(items)),
                                       failures=str(len(items)))
        for f in items:
            case = ElementTree.SubElement(suite, "testcase", classname=path,
                                          name=f"{f['code']} {f['name']} at line {f['line']}")
            failure = ElementTree.SubElement(case, "failure", message=f["message"], type=f["severity"])
            failure.text = f"{location(f)} {f['code']} {f['message']}"
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)


def lsp_diagnostic(f: dict) -> dict:
    return {
        "range": {"start": {"line": f["line"] - 1, "character": f["column"] - 1},
                  "end": {"line": f["end_line"] - 1, "character": f["end_column"] - 1}},
        "severity": _LSP_SEVERITIES[f["severity"]], "code": f["code"],
        "codeDescription": {"href": rule_url(f["code"])}, "source": "trainlint", "message": f["message"],
        "data": {"fix": f.get("fix")},
    }


def lsp(findings: List[dict]) -> str:
    """LSP PublishDiagnosticsParams, one object per file, in a JSON array."""
    from pathlib import Path

    by_path: Dict[str, List[dict]] = {}
    for f in findings:
        by_path.setdefault(f["path"], []).append(f)
    return json.dumps([
        {"uri": Path(os.path.abspath(path)).as_uri(), "diagnostics": [lsp_diagnostic(f) for f in items]}
        for path, items in sorted(by_path.items())
    ], indent=2)


FORMATS = {"text": text, "json": as_json, "sarif": sarif, "github": github, "junit": junit, "lsp": lsp}
