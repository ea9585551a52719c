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
    ("keywords.py", """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.heads = nn.Linear(4, 2, bias=False), nn.Linear(4, 3)
        """, ("keywords.py", "TL601", 6)),
    ("spans.py", """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.heads = nn.Conv1d(4, 2, kernel_size=3,
                                       padding_mode="zeros"), nn.Linear(4, 3)
        """, ("spans.py", "TL601", 6)),
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
    (P.SHIFT_OF_REDUCED, "n = m - 1\nif n.max() > 9: pass\n", False),  # not a shift of itself
    (P.SHIFT_OF_REDUCED, "ok = x == x - 1\nif x.max() > 9: pass\n", False),
    (P.SHIFT_OF_REDUCED, "z = self.y - 1\nif z.max() > 9: pass\n", False),
    (P.SHIFT_OF_REDUCED, "i += 1\nif y.max() > 9: pass\n", False),  # shifted and reduced: two names
    (P.SHIFT_OF_REDUCED, "y -= 1\nif by.max() > 9: pass\n", False),
    (P.SHIFT_OF_REDUCED, "if self.y.max() > 9:\n    self.y = self.y - 1\n", True),
    (P.SHIFT_OF_REDUCED, "if y.min() < 0:\n    y=y+2\n", True),
    (P.SHIFT_OF_REDUCED, "if ready and torch.max (y) > 9: y = (y - 1)\n", True),
    (P.SHIFT_OF_REDUCED, "if (y\n        .max() > 9):\n    y -= 1\n", True),  # a chain over two lines
    (P.SHIFT_OF_REDUCED, "if y[\n        mask, 0].max() > 9:\n    y -= 1\n", True),
    (P.SHIFT_OF_REDUCED, "if self . y.any():\n    self.y += 1\n", True),
    (P.SHIFT_OF_REDUCED, "if max((y)) > 9:\n    y -= 1\n", True),
    (P.SHIFT_OF_REDUCED, "if any(\n        y > 9):\n    y -= 1\n", True),
    (P.SHIFT_OF_REDUCED, "if min(x, y) > 0:\n    y -= 1\n", False),  # the first argument is another name
    (P.SHIFT_OF_REDUCED, "if maximum(y) > 9:\n    y -= 1\n", False),
    (P.ACCUMULATED_NAME, "total += loss\n", True),
    (P.ACCUMULATED_NAME, "total+=self.loss  # running\n", True),
    (P.ACCUMULATED_NAME, "total += (\n    loss\n)\n", True),
    (P.ACCUMULATED_NAME, "total += loss", True),  # at the end of the file
    (P.ACCUMULATED_NAME, "losses . append( (loss) )\n", True),
    (P.ACCUMULATED_NAME, "history.append(loss, )\n", True),
    (P.ACCUMULATED_NAME, "step += 1\ntotal += loss.item()\nx += a * b\n", False),
    (P.ACCUMULATED_NAME, "losses.append(loss.detach())\nlosses.append(-loss)\n", False),
    (P.ATTRIBUTE_CONTAINER, "self.layers = layers = [nn.Linear(4, 4)]\n", True),
    (P.ATTRIBUTE_CONTAINER, "self.layers = nn.ModuleList(layers)\nself.ok = x == [1]\n", False),
    (P.EVAL_SWITCH, "model.train()\nmodel.train(mode)\n", False),
    (P.EVAL_SWITCH, "value = tensor.eval(feed_dict=feed)\n", False),  # TensorFlow: a value computed
    (P.EVAL_SWITCH, "return net.eval ()\n", True),
    (P.EVAL_SWITCH, "model.train(mode=False)\n", True),
    (P.EVAL_SWITCH, "model.train(\n    False)\n", True),
    (P.ATTRIBUTE_CONTAINER, "self.fc = nn.Linear(4, 2, bias=False)\n", False),  # one layer, no tuple
    (P.ATTRIBUTE_CONTAINER, "self.fc = nn.Sequential(\n    nn.Linear(4, 2), nn.ReLU())\nx = 1, 2\n", False),
    (P.ATTRIBUTE_CONTAINER, 'self.fc = nn.Linear(4, 2)  # (\nx = f(1), 2\n', False),  # a bracket in a comment
    (P.ATTRIBUTE_CONTAINER, 'self.heads = nn.Conv1d(4, 2, padding_mode=")",\n    kernel_size=3), nn.ReLU()\n', True),
    (P.ATTRIBUTE_CONTAINER, "self.heads = nn.Linear(4, 2) \\\n    , nn.Linear(4, 3)\n", True),
    (P.ATTRIBUTE_CONTAINER, 'self.doc = f(\n    """never closed\n', True),  # text it cannot follow: admitted
])
def test_pattern_evidence_confirms_the_statement_not_the_substring(evidence, source, found):
    assert evidence.found_in(source.encode()) is found


# engine.py of the cross-file tests: a helper that trains, one that leaves the model in eval mode
HELPERS = """\
    def train_step(net, opt, x, y):
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()

    def evaluate(net, loader):
        net.eval()
        return sum(net(x).sum() for x in loader)
    """


def test_a_file_calling_summarised_helpers_is_analysed_when_they_complete_a_rule(tmp_path, monkeypatch):
    """Nothing in train.py meets a prerequisite, but it calls a helper that trains and one that
    leaves the model in eval mode: their events happen at those calls, so the file is analysed
    (TL102). step.py calls only the helper that trains: a backward() of another file brings no
    loss for the rules that read one, and no rule needs a backward alone, so it is not."""
    analysed = []
    run = Engine._run

    def recording_run(self, tasks):
        analysed.extend(task[1].rsplit("/", 1)[-1] for task in tasks)
        return run(self, tasks)

    monkeypatch.setattr(Engine, "_run", recording_run)
    findings = lint(tmp_path, {
        "engine.py": HELPERS,
        "train.py": """\
            import torch
            from engine import evaluate, train_step as run_step

            def main(model, loader, val_loader):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for epoch in range(10):
                    for x, y in loader:
                        run_step(model, optimizer, x, y)
                    evaluate(model, val_loader)
            """,
        "step.py": """\
            from engine import train_step

            for x, y in loader:
                train_step(model, optimizer, x, y)
            """,
        "unrelated.py": "print('hello')\n",
    })
    assert ("train.py", "TL102", 9) in findings
    assert "train.py" in analysed and "step.py" not in analysed and "unrelated.py" not in analysed


def test_worker_processes_find_what_one_process_finds_through_every_pass(tmp_path):
    """Four files analysed only because of another file's summaries, then again with the answers:
    the worker pool serves both passes (it is made once per run) and the findings are those of a
    single process."""
    (tmp_path / "engine.py").write_text(textwrap.dedent(HELPERS))
    for index in range(4):
        (tmp_path / f"train{index}.py").write_text(textwrap.dedent("""\
            import torch
            from engine import evaluate, train_step

            def main(model, loader, val_loader):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for epoch in range(10):
                    for x, y in loader:
                        train_step(model, optimizer, x, y)
                    evaluate(model, val_loader)
            """))
    found = {jobs: [(f["path"].rsplit("/", 1)[-1], f["code"], f["line"])
                    for f in Engine(Config(root=str(tmp_path)), jobs=jobs).lint([str(tmp_path)])] for jobs in (1, 2)}
    assert found[1] == found[2] == [(f"train{index}.py", "TL102", 9) for index in range(4)]


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
    monkeypatch.setattr(Rule, "may_match", classmethod(lambda cls, data, summaries=frozenset(), scan=None: True))
    assert gated == lint()
    assert len(gated) > 300  # the examples' findings are there to compare
