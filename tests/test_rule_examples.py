"""Every rule's VALID and INVALID examples, Fixit-style: INVALID lines marked `# <-` must be
reported by that rule, at that line, and nothing else by it; VALID examples must be clean."""
import pytest

from trainlint.rule import all_rules, marked_lines

from .conftest import lint_text

CASES = [
    pytest.param(code, kind, index, example, id=f"{code}-{kind}-{index}")
    for code, rule in all_rules().items()
    for kind, examples in (("invalid", rule.INVALID), ("valid", rule.VALID))
    for index, example in enumerate(examples)
]


@pytest.mark.parametrize("code, kind, index, example", CASES)
def test_example(code, kind, index, example):
    reported = sorted({f["line"] for f in lint_text(example, [code])})
    expected = marked_lines(example) if kind == "invalid" else []
    assert reported == expected


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_rule_is_documented(code):
    rule = all_rules()[code]
    assert rule.INVALID and rule.VALID, "every rule needs bad and good examples"
    assert all(marked_lines(e) for e in rule.INVALID), "every INVALID example marks its reported line"
    text = rule.explain()
    for part in ("What it does", "Why it is bad", "Fix"):
        assert part in text
    assert rule.severity in ("error", "warning", "info")
