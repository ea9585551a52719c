"""docs/trace-confirmation.md says, for every rule, how `trace` confirms it: the table it is
written from must cover every rule, claim confirmation exactly for the codes the tracer's evidence
can produce, and cite fixtures and cases whose traces do show it (those tests run the tracer)."""
import ast
import os
import re

import pytest

pytest.importorskip("torch")

from tests.test_trace import FIXTURE_VERDICTS  # noqa: E402
from tests.test_trace_checks import CASES  # noqa: E402
from trainlint.rule import all_rules  # noqa: E402
from trainlint.trace import checks, coverage  # noqa: E402

DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "trace-confirmation.md")


def test_every_rule_is_in_the_table():
    assert list(coverage.TABLE) == list(all_rules())


def test_doc_is_the_table():
    with open(DOC, encoding="utf-8") as handle:
        assert handle.read() == coverage.markdown(), "regenerate: python -m trainlint.trace.coverage " + DOC


def codes_the_evidence_can_produce():
    """TL codes written in the functions that turn a recorded run into evidence."""
    with open(checks.__file__, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = set()
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.name in ("evidence", "line_evidence", "_eval_mode_training"):
            found |= {node.value for node in ast.walk(function) if isinstance(node, ast.Constant)
                      and isinstance(node.value, str) and re.fullmatch(r"TL\d{3}", node.value)}
    return found


def test_confirmed_codes_are_those_the_tracer_can_confirm():
    assert {code for code, entry in coverage.TABLE.items() if entry.confirmed} == codes_the_evidence_can_produce()


def test_each_confirmed_code_is_shown_by_a_traced_fixture_or_case():
    by_fixture = {(incident, code) for incident, seen in FIXTURE_VERDICTS.items()
                  for code, verdict in seen if verdict == "confirmed"}
    assert {(e.fixture, code) for code, e in coverage.TABLE.items() if e.fixture} == by_fixture
    in_cases = {code for _, expected in CASES.values() for code in expected}
    for code, entry in coverage.TABLE.items():
        if entry.confirmed:
            assert entry.fixture or code in in_cases, f"{code}: no traced fixture or case shows it"
