"""Fuzzing: `check` on broken and odd sources never crashes, always prints valid JSON and exits
0 or 1, and reports a file it cannot parse as TL000 while still linting the others. The sources
are real training files (the fixtures and look-alikes) mutated the ways files get broken in
practice: cut short, random bytes, stray brackets, tabs, CR line ends, deep nesting, lines
dropped or repeated; plus syntactically valid programs generated from Python's grammar."""
import ast
import glob
import json
import os
import random
import warnings

import pytest
from click.testing import CliRunner

from trainlint.cli import cli

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
SEEDS = sorted(glob.glob(os.path.join(ROOT, "fixtures", "*", "*", "*.py"))
               + glob.glob(os.path.join(ROOT, "tests", "lookalikes", "*.py")))


def _cut(data, rng):
    return data[:rng.randrange(len(data) + 1)]


def _random_bytes(data, rng):
    at = rng.randrange(len(data) + 1)
    return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16))) + data[at:]


def _stray_bracket(data, rng):
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice([b"(", b")", b"[", b"]", b"{", b"}", b":", b"\\", b'"', b"'''"]) + data[at:]


def _tabs(data, rng):
    return data.replace(b"    ", b"\t", rng.randrange(1, 50))


def _carriage_returns(data, rng):
    return data.replace(b"\n", rng.choice([b"\r", b"\r\n", b"\n\r"]))


def _deep_nesting(data, rng):
    depth = rng.choice([50, 200, 1000])
    kind = rng.choice(["parens", "ifs", "lists"])
    if kind == "parens":
        extra = b"x = " + b"(" * depth + b"1" + b")" * depth + b"\n"
    elif kind == "lists":
        extra = b"x = " + b"[" * depth + b"]" * depth + b"\n"
    else:
        extra = b"".join(b" " * i + b"if x:\n" for i in range(min(depth, 100))) + b" " * min(depth, 100) + b"pass\n"
    return data + b"\n" + extra


def _drop_lines(data, rng):
    lines = data.split(b"\n")
    for _ in range(rng.randrange(1, 5)):
        if lines:
            del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def _repeat_lines(data, rng):
    lines = data.split(b"\n")
    at = rng.randrange(len(lines))
    return b"\n".join(lines[:at] + lines[at:at + rng.randrange(1, 6)] * rng.randrange(2, 4) + lines[at:])


def _odd_text(data, rng):
    return rng.choice([b"\xef\xbb\xbf", b"# -*- coding: latin-1 -*-\n", b"\x00", b"\xff\xfe"]) + data


MUTATIONS = [_cut, _random_bytes, _stray_bracket, _tabs, _carriage_returns, _deep_nesting, _drop_lines,
             _repeat_lines, _odd_text]


def _check_json(folder):
    result = CliRunner().invoke(cli, ["check", str(folder), "--format", "json", "--no-cache", "--isolated"])
    assert result.exit_code in (0, 1), result.output[-2000:]
    return json.loads(result.output)


def _unparsable(data):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(data)
        return False
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True


@pytest.mark.parametrize("round_", range(4))
def test_mutated_training_files_never_crash_check(tmp_path, round_):
    rng = random.Random(round_)
    sources = {}
    for index in range(60):
        seed = rng.choice(SEEDS)
        data = open(seed, "rb").read()
        for mutation in rng.sample(MUTATIONS, rng.randrange(1, 3)):
            data = mutation(data, rng)
        name = f"m{index:03d}_{os.path.basename(seed)}"
        (tmp_path / name).write_bytes(data)
        sources[name] = data
    findings = _check_json(tmp_path)
    internal = [f for f in findings if "internal error" in f["message"]]
    assert internal == [], internal
    tl000 = {os.path.basename(f["path"]) for f in findings if f["code"] == "TL000"}
    unparsable = {name for name, data in sources.items() if _unparsable(data)}
    assert unparsable <= tl000, sorted(unparsable - tl000)


TRAINING_TAIL = """
for i, batch in enumerate(loader):
    loss = criterion(model(batch), batch) / accum
    loss.backward()
    if (i + 1) % accum == 0:
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad()
model.eval()
"""


def test_generated_programs_never_crash_check(tmp_path):
    hypothesmith = pytest.importorskip("hypothesmith")
    from hypothesis import HealthCheck, given, settings

    programs = []

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(hypothesmith.from_grammar())
    def collect(source):
        programs.append(source)

    collect()
    for index, source in enumerate(programs):
        # the training calls make every file go through the whole semantic layer, not just the parser
        (tmp_path / f"g{index:03d}.py").write_text(source + TRAINING_TAIL, encoding="utf-8")
    findings = _check_json(tmp_path)
    assert [f for f in findings if "internal error" in f["message"]] == []


def test_a_rule_that_fails_costs_only_its_own_findings(tmp_path, monkeypatch):
    """A bug in one rule (here an endless recursion) is reported as TL000 naming the rule, and the
    other rules' findings for the same file still come out."""
    from trainlint.rule import all_rules

    def broken(self, facts):
        raise RecursionError("maximum recursion depth exceeded")
        yield

    monkeypatch.setattr(all_rules()["TL303"], "check", broken)
    (tmp_path / "train.py").write_text(
        "import torch\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "losses = []\n"
        "for x, y in loader:\n"
        "    loss = torch.nn.functional.mse_loss(model(x), y)\n"
        "    losses.append(loss)\n"
        "    loss.backward()\n"
        "    optimizer.step()\n")
    findings = _check_json(tmp_path)
    assert [f["code"] for f in findings] == ["TL000", "TL203"], findings
    assert "internal error in TL303" in findings[0]["message"]
