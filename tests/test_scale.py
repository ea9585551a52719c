"""What keeps a large tree's `check` cheap must not change what it reports: the syntax check of
files no rule can match, and the way a file's facts are freed."""
import gc
import weakref

import pytest

from trainlint.analysis import Settings, lint_file, parses
from trainlint.rule import all_rules
from trainlint.semantics import build
from trainlint.semantics.summaries import RecordingIndex


@pytest.mark.parametrize("source, accepted", [
    ("x = 1\n", True),
    ("def f(:\n", False),
    ("nonlocal x\n", True),  # rejected by the symbol table, accepted by ast.parse: it parses
    ("return 1\n", True),
    ("x = 'unterminated\n", False),
])
def test_parses_agrees_with_ast_parse(source, accepted):
    assert parses(source.encode()) is accepted


def test_facts_are_freed_without_the_cycle_collector(monkeypatch):
    """A file's facts are freed by reference counting as soon as it is linted: with the automatic
    collector paused during a file, facts left in reference cycles would pile up."""
    built = []
    original = build.build_file_facts

    def recording(*args):
        facts = original(*args)
        built.append(weakref.ref(facts))
        built.extend(weakref.ref(fn) for fn in facts.functions)
        return facts

    monkeypatch.setattr("trainlint.semantics.analyze", recording)
    source = b"""
class Trainer:
    def __init__(self, model):
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def fit(self, loader):
        def step(x, y):
            loss = criterion(self.model(x), y)
            loss.backward()
            return loss
        for i, (x, y) in enumerate(loader):
            self.optimizer.zero_grad()
            step(x, y)
            if (i + 1) % accum == 0:
                self.optimizer.step()
"""
    enabled = gc.isenabled()
    gc.disable()
    try:
        result = lint_file(source, "train.py", ("train", ""), Settings(tuple(sorted(all_rules()))), RecordingIndex())
        assert result["findings"], "the example should give the rules something to query"
        assert len(built) == 4 and all(ref() is None for ref in built)
    finally:
        if enabled:
            gc.enable()


def _reference_calls(node):
    """Every call under ``node`` by a plain walk over all child nodes (nested scopes excluded)."""
    import ast

    from trainlint.semantics.syntax import _NESTED_SCOPES

    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Call):
            found.append(current)
        stack.extend(child for child in ast.iter_child_nodes(current) if not isinstance(child, _NESTED_SCOPES))
    return found


def _sample_sources():
    """The fixtures, the rules' examples and a file of rare syntax: the code walks are compared on."""
    import glob
    import os
    import textwrap

    sources = [open(path, encoding="utf-8").read()
               for path in glob.glob(os.path.join(os.path.dirname(__file__), "..", "fixtures", "**", "*.py"), recursive=True)]
    sources += [textwrap.dedent(example) for rule in all_rules().values() for example in rule.INVALID + rule.VALID]
    sources.append("match x:\n    case {'k': f(y)} if g(z):\n        h(*[a(b) for b in c], **{k: v() for k in d})\n"
                   "try:\n    pass\nexcept E(e()) as err:\n    raise F(err) from G()\nelse:\n    y = 1\n"
                   "finally:\n    del y\nx: t(1) = f'{q(2)!r:{w(3)}}'\nawait_me = lambda: l()\n"
                   "def outer():\n    with a() as b:\n        while c:\n            class Inner:\n                z = 1\n"
                   "            async def inner():\n                return 2\n        else:\n            pass\n")
    return sources


def test_calls_in_finds_what_a_plain_walk_finds():
    """calls_in skips fields by name for speed; on every statement of the fixtures and the rules'
    examples it must find the same calls as a walk over every child node."""
    import ast

    from trainlint.semantics.syntax import calls_in

    compared = 0
    for source in _sample_sources():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.stmt):
                assert {id(c) for c in calls_in(node)} == {id(c) for c in _reference_calls(node)}, ast.dump(node)[:200]
                compared += 1
    assert compared > 1000


def test_own_statements_are_the_statements_among_own_nodes():
    """own_statements walks statement blocks only, for speed; for every function of the samples
    it must give the statements own_nodes reaches, in source order."""
    import ast

    from trainlint.config import Config
    from trainlint.semantics import analyze, functions
    from trainlint.semantics.dataflow import own_nodes, own_statements
    from trainlint.semantics.summaries import RecordingIndex

    compared = 0
    for source in _sample_sources():
        for fn in functions(analyze(ast.parse(source), "sample.py", "sample", "", Config().hints, RecordingIndex())):
            expected = sorted((n for n in own_nodes(fn) if isinstance(n, ast.stmt)), key=lambda n: (n.lineno, n.col_offset))
            assert list(own_statements(fn)) == expected, fn.qualname
            compared += len(expected)
    assert compared > 1000
