"""Byte prerequisites (semantics.prerequisites): a file lacking a rule's prerequisites is not
analysed for it, so each prerequisite must hold wherever the rule can match — including the
spellings a word list would miss."""
import builtins
import glob
import io
import keyword
import os
import re
import textwrap
import tokenize

import pytest

from tests.test_precision import CASES as PRECISION_CASES
from trainlint.config import Config
from trainlint.engine import Engine
from trainlint.rule import Rule, all_rules, strip_markers
from trainlint.semantics import prerequisites as P

HERE = os.path.dirname(os.path.abspath(__file__))


def lint(tmp_path, files):
    for name, source in files.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    engine = Engine(Config(root=str(tmp_path)), jobs=1)
    return [(f["path"].rsplit("/", 1)[-1], f["code"], f["line"]) for f in engine.lint([str(tmp_path)])]


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_every_flagged_example_meets_its_rule_prerequisites(code):
    rule = all_rules()[code]
    for example in rule.INVALID:
        assert rule.may_match(strip_markers(example).encode()), (code, example)


@pytest.mark.parametrize("name, source, expected", [
    ("move.py", """\
        def run(loader, model, use_cuda):
            for images, labels in loader:
                if use_cuda: images.cuda()
                model(images)
        """, ("move.py", "TL702", 3)),
    ("remap.py", """\
        def train(loader, model, opt):
            for x, y in loader:
                if y.max() > 9: y = y - 1
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        """, ("remap.py", "TL304", 3)),
    ("heads.py", """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.heads = nn.Linear(4, 2), nn.Linear(4, 3)
        """, ("heads.py", "TL601", 6)),
    ("overflow.py", """\
        def train(model, loader, optimizer, criterion, detect):
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                skipOverflow = detect(model)
                if skipOverflow:
                    continue
                optimizer.step()
                optimizer.zero_grad()
        """, ("overflow.py", "TL208", 6)),
])
def test_spellings_a_word_list_could_miss_are_seen(tmp_path, name, source, expected):
    """One-line statements after a colon, a bare tuple of layers, a non-finite check named in
    camel case (`skipOverflow`)."""
    assert expected in lint(tmp_path, {name: source})


@pytest.mark.parametrize("evidence, source, found", [
    (P.DISCARDED_MOVE, "x = f(y.to(d))\n", False),
    (P.DISCARDED_MOVE, "batch.x.to(d)\n", False),  # only a bare name can be known to hold a tensor
    (P.DISCARDED_MOVE, "    y .to(d)\n", True),
    (P.DISCARDED_MOVE, "a = 1; y.float()\n", True),
    (P.SHIFT, "n = m - 1\n", False),
    (P.SHIFT, "ok = x == x - 1\n", False),
    (P.SHIFT, "z = self.y - 1\n", False),
    (P.SHIFT, "self.y = self.y - 1\n", True),
    (P.SHIFT, "    y=y+2\n", True),
])
def test_pattern_evidence_confirms_the_statement_not_the_substring(evidence, source, found):
    assert evidence.found_in(source.encode()) is found


def test_a_file_calling_a_summarised_helper_is_analysed(tmp_path, monkeypatch):
    """Nothing in train.py meets a prerequisite, but it calls a helper that trains: the
    helper's backward() happens at that call, so the file is analysed to ask about it."""
    analysed = []
    run = Engine._run

    def recording_run(self, tasks):
        analysed.extend(task[1].rsplit("/", 1)[-1] for task in tasks)
        return run(self, tasks)

    monkeypatch.setattr(Engine, "_run", recording_run)
    lint(tmp_path, {
        "engine.py": """\
            def train_step(net, opt, x, y):
                opt.zero_grad()
                F.mse_loss(net(x), y).backward()
                opt.step()
            """,
        "train.py": """\
            from engine import train_step

            for x, y in loader:
                train_step(model, optimizer, x, y)
            """,
        "unrelated.py": "print('hello')\n",
    })
    assert "train.py" in analysed and "unrelated.py" not in analysed


def renamed(source, style):
    """``source`` with every name it binds or reads (not attributes, keywords, builtins or imported
    modules) respelt by ``style``: the words a prerequisite looks for must not be a variable's."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    fixed = set(keyword.kwlist) | set(dir(builtins)) | {"self", "cls"}
    names = set()
    for index, token in enumerate(tokens):
        if token.type == tokenize.NAME and token.string == "import":
            for later in tokens[index + 1:]:
                if later.type == tokenize.NEWLINE:
                    break
                fixed.add(later.string)
    for index, token in enumerate(tokens):
        if token.type == tokenize.NAME and token.string not in fixed and not token.string.startswith("__") \
                and not (index and tokens[index - 1].string == "."):
            names.add(token.string)
    for name in sorted(names, key=len, reverse=True):
        source = re.sub(r"(?<![.\w])" + re.escape(name) + r"\b", style(name), source)
    return source


def example_projects():
    """Every example the suite holds: the rules' VALID/INVALID, the precision projects, the
    look-alikes and the fixtures."""
    for code, rule in all_rules().items():
        for kind in ("INVALID", "VALID"):
            for number, example in enumerate(getattr(rule, kind)):
                yield f"{code}-{kind}-{number}", {"train.py": strip_markers(example)}
    for name, files in PRECISION_CASES.items():
        yield name, {file: textwrap.dedent(text).strip("\n") + "\n" for file, text in files.items()}
    for path in sorted(glob.glob(os.path.join(HERE, "lookalikes", "*.py")) +
                       glob.glob(os.path.join(HERE, os.pardir, "fixtures", "*", "*", "*.py"))):
        with open(path, encoding="utf-8") as handle:
            yield path.replace(os.sep, "-"), {os.path.basename(path): handle.read()}


STYLES = {"as written": lambda name: name, "camelCase": lambda name: "my" + "".join(
    word.capitalize() for word in name.split("_")), "UPPER": str.upper}


def test_prerequisites_never_hide_a_finding(tmp_path, monkeypatch):
    """Linting every example, and every example with its names respelt, with and without the
    prerequisites gives the same findings: a prerequisite that a finding can do without would
    silently lose it (as `overflow` alone once lost TL208 on `skipOverflow`)."""
    for project, files in example_projects():
        for style, respell in STYLES.items():
            folder = tmp_path / re.sub(r"\W+", "-", f"{project}-{style}")
            folder.mkdir()
            for name, text in files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(renamed(text, respell))

    def lint():
        findings = Engine(Config(root=str(tmp_path)), jobs=1).lint([str(tmp_path)])
        return sorted((f["path"], f["line"], f["code"], f["message"]) for f in findings)

    gated = lint()
    monkeypatch.setattr(Rule, "may_match", classmethod(lambda cls, data, answered=False, found=None: True))
    assert gated == lint()
    assert len(gated) > 300  # the examples' findings are there to compare
