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
