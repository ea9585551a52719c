"""Structural fixes (LibCST): exact before/after text for TL201, TL203, TL301, TL401 and TL502,
comments and formatting kept, CRLF and tabs, nested loops, the helper case, idempotence, opt-in
as unsafe; and each runnable fixture, fixed, no longer shows its bug when traced on CPU."""
import json
import os
import shutil
import textwrap

import pytest
from click.testing import CliRunner

from trainlint.cli import cli

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures")

CASES = {
    "TL201 zero_grad moved after the step": ("""\
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                # clear before each micro-batch
                optimizer.zero_grad()

                loss = criterion(model(x), y) / accum
                loss.backward()
                if (i + 1) % accum == 0:
                    optimizer.step()
                    log(i)
        """, """\
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / accum
                loss.backward()
                if (i + 1) % accum == 0:
                    optimizer.step()
                    # clear before each micro-batch
                    optimizer.zero_grad()
                    log(i)
        """),
    "TL203 zero_grad inserted": ("""\
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            scaler.step(opt)  # the step
            scaler.update()
        """, """\
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            scaler.step(opt)  # the step
            opt.zero_grad()
            scaler.update()
        """),
    "TL301 rescale taken out of the debug branch": ("""\
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                if epoch == 0 and i == 0:
                    print("first loss", loss.item())
                    loss = loss / accum  # scale for accumulation
                loss.backward()
                if (i + 1) % accum == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """, """\
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                if epoch == 0 and i == 0:
                    print("first loss", loss.item())
                loss = loss / accum  # scale for accumulation
                loss.backward()
                if (i + 1) % accum == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """),
    "TL301 a branch holding only the rescale disappears": ("""\
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y)
            if args.debug:
                loss /= accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """, """\
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y)
            loss /= accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """),
    "TL401 scheduler moved under the step's guard": ("""\
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
            scheduler.step()  # per update
        """, """\
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                scheduler.step()  # per update
                optimizer.zero_grad()
        """),
    "TL401 scheduler stepped before the optimizer": ("""\
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                scheduler.step()
                criterion(model(x), y).backward()
                optimizer.step()
        """, """\
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
                scheduler.step()
        """),
    "TL502 unscale_ inserted before the clip": ("""\
        scaler = torch.cuda.amp.GradScaler()
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda"):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), max_norm=1.0)
            scaler.step(optimizer)
            scaler.update()
        """, """\
        scaler = torch.cuda.amp.GradScaler()
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda"):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), max_norm=1.0)
            scaler.step(optimizer)
            scaler.update()
        """),
}


def check(*args):
    return CliRunner().invoke(cli, ["check", *args])


@pytest.mark.parametrize("name", sorted(CASES))
def test_before_after(workdir, name):
    before, expected = (textwrap.dedent(text) for text in CASES[name])
    code = name.split()[0]
    path = workdir / "train.py"
    path.write_text(before)
    check("train.py", "--fix", "--unsafe-fixes", "--select", code)
    assert path.read_text() == expected
    check("train.py", "--fix", "--unsafe-fixes", "--select", code)
    assert path.read_text() == expected  # idempotent: the finding is gone, nothing else moves
    assert json.loads(check("train.py", "--select", code, "--format", "json").output) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_structural_fixes_are_unsafe(workdir, name):
    before = textwrap.dedent(CASES[name][0])
    (workdir / "train.py").write_text(before)
    findings = json.loads(check("train.py", "--format", "json", "--select", name.split()[0]).output)
    assert [f["fix"]["safe"] for f in findings] == [False]
    check("train.py", "--fix", "--select", name.split()[0])
    assert (workdir / "train.py").read_text() == before


# other top-level statements around the loop: LibCST reads only the statement that holds the fix
AROUND = ("import functools\n\n\n@functools.lru_cache(maxsize=None)\ndef helper(n):\n    return [i for i in range(n)]\n\n\n"
          "a = 1; b = 2\n", "\n\nclass Tail:\n    steps = 0  # comment\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_fix_lands_among_other_top_level_statements(workdir, name):
    before, expected = (AROUND[0] + textwrap.dedent(text) + AROUND[1] for text in CASES[name])
    path = workdir / "train.py"
    path.write_text(before)
    check("train.py", "--fix", "--unsafe-fixes", "--select", name.split()[0])
    assert path.read_text() == expected


def test_region_is_the_top_level_statement_alone_on_its_lines():
    import ast

    from trainlint.restructure import region_of

    tree = ast.parse(AROUND[0] + "for x in y:\n    f(x)\n    g(x)\n" + AROUND[1])
    assert region_of(tree, 4, 6) == (4, 6)  # the decorated function, decorator included
    assert region_of(tree, 10, 12) == (10, 12)
    assert region_of(tree, 9) is None  # `a = 1; b = 2`: two statements on one line
    assert region_of(tree, 6, 10) is None  # lines of two statements


def test_crlf_and_tabs_survive(workdir):
    before, expected = (textwrap.dedent(text).replace("    ", "\t") for text in CASES["TL201 zero_grad moved after the step"])
    path = workdir / "train.py"
    path.write_bytes(before.replace("\n", "\r\n").encode())
    check("train.py", "--fix", "--unsafe-fixes")
    assert path.read_bytes() == expected.replace("\n", "\r\n").encode()


def test_overlapping_fixes_all_land(workdir):
    """Two moves next to the same step: the second is offered again after the first lands."""
    path = workdir / "train.py"
    path.write_text(textwrap.dedent("""\
        for i, (x, y) in enumerate(loader):
            (criterion(model(x), y) / accum).backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
            scheduler.step()
            ema.update_parameters(model)
        """))
    result = check("train.py", "--fix", "--unsafe-fixes")
    assert "Fixed 2 findings" in result.output
    assert path.read_text().splitlines()[3:7] == [
        "        optimizer.step()", "        ema.update_parameters(model)", "        scheduler.step()",
        "        optimizer.zero_grad()"] or path.read_text().splitlines()[3:7] == [
        "        optimizer.step()", "        scheduler.step()", "        ema.update_parameters(model)",
        "        optimizer.zero_grad()"]


def test_helper_case_is_fixed_in_the_helper_or_not_at_all(workdir):
    """zero_grad() reached through a helper called every micro-batch: the finding stands at the
    call, and no fix moves a line it cannot see as one statement of this loop."""
    source = textwrap.dedent("""\
        def reset(optimizer):
            optimizer.zero_grad()

        for i, (x, y) in enumerate(loader):
            reset(optimizer)
            (criterion(model(x), y) / accum).backward()
            if (i + 1) % accum == 0:
                optimizer.step()
        """)
    (workdir / "train.py").write_text(source)
    findings = json.loads(check("train.py", "--format", "json", "--select", "TL201").output)
    assert [(f["line"], f["fix"]) for f in findings] == [(5, None)]
    check("train.py", "--fix", "--unsafe-fixes")
    assert (workdir / "train.py").read_text() == source


def test_statements_sharing_a_line_are_left_alone(workdir):
    source = "for i, (x, y) in enumerate(loader):\n    optimizer.zero_grad(); y = y.float()\n" \
             "    (criterion(model(x), y) / accum).backward()\n    if (i + 1) % accum == 0:\n        optimizer.step()\n"
    (workdir / "train.py").write_text(source)
    findings = json.loads(check("train.py", "--format", "json", "--select", "TL201").output)
    assert [(f["code"], f["fix"]) for f in findings] == [("TL201", None)]


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("incident, codes", [
    ("regression_pipeline", {"TL301", "TL401"}),
    ("contrastive_regions", {"TL201"}),
])
def test_fixed_fixture_no_longer_shows_the_bug_when_traced(tmp_path, incident, codes):
    from trainlint.trace import trace

    folder = tmp_path / incident
    shutil.copytree(os.path.join(FIXTURES, incident, "buggy"), folder)
    script = str(folder / "train.py")
    before = trace(script, [], steps=8)
    assert {(code, "confirmed") for code in codes} <= {(f["code"], f["verdict"]) for f in before["findings"]}
    CliRunner().invoke(cli, ["check", str(folder), "--fix", "--unsafe-fixes", "--no-cache"])
    static = json.loads(CliRunner().invoke(cli, ["check", str(folder), "--format", "json", "--no-cache"]).output)
    assert not codes & {f["code"] for f in static}
    after = trace(script, [], steps=8)
    assert after["script_exit"] == "stopped-after-steps"
    shown = {f["code"] for f in after["findings"] if f["verdict"] in (None, "confirmed", "runtime-only")}
    assert not codes & shown, after["findings"]
