"""--fix and --diff: exact before/after text, formatting and comments kept, unsafe fixes opt-in."""
import textwrap

import pytest
from click.testing import CliRunner

from trainlint.cli import cli


def fix(workdir, source, *flags):
    path = workdir / "train.py"
    path.write_text(textwrap.dedent(source))
    result = CliRunner().invoke(cli, ["check", "train.py", "--fix", *flags])
    return path.read_text(), result


CASES = {
    "TL101 return model": (
        """\
        def build_model(cfg):
            model = Net(cfg)  # keep me
            return model.eval()  # and me

        def main():
            model = build_model(cfg)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        """,
        """\
        def build_model(cfg):
            model = Net(cfg)  # keep me
            return model  # and me
        """,
    ),
    "TL601 ModuleList": (
        """\
        from torch import nn

        class MLP(nn.Module):
            def __init__(self, sizes):
                super().__init__()
                self.layers = [nn.Linear(a, b)   # odd spacing stays
                               for a, b in zip(sizes, sizes[1:])]
        """,
        ("self.layers = nn.ModuleList([nn.Linear(a, b)   # odd spacing stays\n",
         "                       for a, b in zip(sizes, sizes[1:])])\n"),
    ),
    "TL601 empty dict": (
        """\
        import torch

        class Heads(torch.nn.Module):
            def __init__(self, tasks):
                super().__init__()
                self.heads = {}
                for task in tasks:
                    self.heads[task] = torch.nn.Linear(8, 1)
        """,
        """\
                self.heads = torch.nn.ModuleDict()
        """,
    ),
    "TL702 assign": (
        """\
        for images, labels in train_loader:
            images.to(device, non_blocking=True)  # move
            model(images)
        """,
        """\
            images = images.to(device, non_blocking=True)  # move
        """,
    ),
    "TL303 detach": (
        """\
        total = 0.0
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            total += loss
        """,
        """\
            total += loss.detach()
        """,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fix_before_after(workdir, name):
    before, expected = CASES[name]
    after, result = fix(workdir, before)
    for part in expected if isinstance(expected, tuple) else (textwrap.dedent(expected),):
        assert part in after, after
    before_lines = textwrap.dedent(before).splitlines()
    after_lines = after.splitlines()
    assert len(before_lines) == len(after_lines)
    assert "Fixed 1 finding" in result.output


def test_fix_clears_the_finding(workdir):
    after, result = fix(workdir, CASES["TL702 assign"][0])
    assert result.exit_code == 0 and "All checks passed!" in result.output


def test_unsafe_fixes_are_opt_in(workdir):
    source = """\
    import torch
    from torch import nn

    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.ones(1, requires_grad=True)
    """
    after, result = fix(workdir, source)
    assert after == textwrap.dedent(source) and result.exit_code == 1
    after, result = fix(workdir, source, "--unsafe-fixes")
    assert "self.scale = nn.Parameter(torch.ones(1, requires_grad=True))" in after


def test_diff_changes_nothing(workdir):
    path = workdir / "train.py"
    source = textwrap.dedent(CASES["TL702 assign"][0])
    path.write_text(source)
    result = CliRunner().invoke(cli, ["check", "train.py", "--diff"])
    assert path.read_text() == source
    assert result.exit_code == 1
    assert "-    images.to(device, non_blocking=True)  # move\n" in result.output
    assert "+    images = images.to(device, non_blocking=True)  # move\n" in result.output


def test_crlf_and_form_feed_survive(workdir):
    path = workdir / "train.py"
    path.write_bytes(b"\x0c\r\nfor images, labels in train_loader:\r\n    images.cuda()\r\n")
    CliRunner().invoke(cli, ["check", "train.py", "--fix"])
    assert path.read_bytes() == b"\x0c\r\nfor images, labels in train_loader:\r\n    images = images.cuda()\r\n"


def test_unused_suppressions(workdir):
    (workdir / "train.py").write_text(textwrap.dedent("""\
        for x, y in loader:
            loss = criterion(model(x), y)  # noqa: TL201
            loss.backward()  # noqa: E501
            optimizer.step()  # trainlint: ignore[TL203]
            optimizer.zero_grad()
        """))
    result = CliRunner().invoke(cli, ["check", "train.py", "--report-unused-suppressions", "--format", "json"])
    import json

    findings = json.loads(result.output)
    assert [(f["code"], f["line"]) for f in findings] == [("TL002", 2), ("TL002", 4)]
