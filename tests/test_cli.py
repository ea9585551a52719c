"""The command line as a user meets it: output contract, exit codes, bad input, config."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from trainlint.cli import cli

BUGGY = """\
for i, (x, y) in enumerate(loader):
    optimizer.zero_grad()
    loss = criterion(model(x), y) / accum
    loss.backward()
    if (i + 1) % accum == 0:
        optimizer.step()
"""


def run(*args, input=None):
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.output


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAINLINT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_json_contract(project):
    write(project / "src" / "train.py", BUGGY)
    code, output = run("check", "src", "--format", "json")
    assert code == 1
    [finding] = json.loads(output)
    assert finding == {
        "code": "TL201", "name": "zero-grad-every-micro-batch", "severity": "error",
        "message": finding["message"], "path": os.path.join("src", "train.py"), "line": 2, "column": 5,
        "end_line": 2, "end_column": 26, "fix": finding["fix"],
    }
    assert finding["fix"]["safe"] is False and finding["fix"]["message"].startswith("move zero_grad()")
    assert [(e["line"], e["column"], e["end_line"], e["end_column"]) for e in finding["fix"]["edits"]] == [(2, 1, 7, 1)]
    assert "line 6" in finding["message"] and "(i + 1) % accum == 0" in finding["message"]


def test_text_output_and_clean_exit(project):
    write(project / "bad.py", BUGGY)
    write(project / "good.py", "print('hello')\n")
    code, output = run("check", "bad.py")
    assert code == 1
    assert output.startswith("bad.py:2:5: TL201 ")
    assert output.rstrip().endswith("Found 1 finding (1 error). 1 more with --fix --unsafe-fixes.")
    assert run("check", "good.py") == (0, "All checks passed!\n")


def test_unparsable_file_is_reported_and_others_still_linted(project):
    write(project / "pkg" / "broken.py", "def f(:\n    loss.backward()\n")
    write(project / "pkg" / "py2.py", "print 'hello'\nloss.backward()\n")
    (project / "pkg" / "blob.py").write_bytes(b"\x00\x01backward")
    write(project / "pkg" / "train.py", BUGGY)
    code, output = run("check", "pkg", "--format", "json")
    findings = {(os.path.basename(f["path"]), f["code"]) for f in json.loads(output)}
    assert findings == {("broken.py", "TL000"), ("py2.py", "TL000"), ("blob.py", "TL000"), ("train.py", "TL201")}
    assert code == 1


@pytest.mark.parametrize("requires, says_why", [(">=3.99", True), (">=3.8", False), (None, False)])
def test_unparsable_for_this_python_says_so(project, requires, says_why):
    """A project that requires a newer Python than trainlint runs on (PEP 695's `type X = ...`
    under 3.11) gets told that this Python is the reason, not that its code is broken."""
    if requires:
        write(project / "pyproject.toml", f'[project]\nname = "demo"\nrequires-python = "{requires}"\n')
    write(project / "src" / "demo" / "aliases.py", "def f(:\n    loss.backward()\n")
    code, output = run("check", "src", "--format", "json")
    [finding] = json.loads(output)
    running = "{}.{}".format(*sys.version_info[:2])
    assert (code, finding["code"]) == (1, "TL000")
    assert (f"cannot parse with Python {running} (" in finding["message"]
            and "the project requires Python >=3.99" in finding["message"]) == says_why
    assert finding["message"].startswith("cannot parse: ") != says_why


@pytest.mark.parametrize("source, word", [
    ("x = x.cuda(async=True)\nloss.backward()\n", "async"),
    ("def fetch(url, async):\n    loss.backward()\n", "async"),
    ("handle.await\nloss.backward()\n", "await"),
    ("x = x.cuda(non_blocking=True\nloss.backward()\n", None),
])
def test_name_reserved_since_python_37_says_so(project, source, word):
    """Code written before Python 3.7 (`cuda(async=True)`) is told why it does not parse."""
    write(project / "old.py", source)
    [finding] = json.loads(run("check", "old.py", "--format", "json")[1])
    assert finding["code"] == "TL000"
    assert (f"'{word}' is used as a name, and it is a reserved word since Python 3.7" in finding["message"]) \
        == (word is not None)


def test_missing_path_is_tl000_not_a_crash(project):
    code, output = run("check", "nope.py", "--format", "json")
    [finding] = json.loads(output)
    assert (code, finding["code"], finding["path"]) == (1, "TL000", "nope.py")


def test_latin1_file_with_coding_cookie(project):
    (project / "enc.py").write_bytes("# -*- coding: latin-1 -*-\n# caf\xe9\n".encode("latin-1") + BUGGY.encode())
    code, output = run("check", "enc.py", "--format", "json")
    assert [f["line"] for f in json.loads(output)] == [4]


def test_symlink_loop_does_not_hang(project):
    write(project / "d" / "train.py", BUGGY)
    os.symlink(project / "d", project / "d" / "loop")
    code, output = run("check", "d", "--format", "json")
    assert [f["code"] for f in json.loads(output)] == ["TL201"]


def test_a_file_reached_twice_is_linted_once(project):
    write(project / "d" / "train.py", BUGGY)
    os.symlink(project / "d" / "train.py", project / "d" / "zz_alias.py")
    code, output = run("check", "d", "d/train.py", "--format", "json")
    assert [(f["code"], f["path"]) for f in json.loads(output)] == [("TL201", os.path.join("d", "train.py"))]


def test_stdin(project):
    code, output = run("check", "-", "--stdin-filename", "nb/train.py", "--format", "json", input=BUGGY)
    [finding] = json.loads(output)
    assert (code, finding["path"], finding["line"]) == (1, "nb/train.py", 2)


def test_select_ignore_and_fail_on(project):
    write(project / "bad.py", BUGGY)
    assert run("check", "bad.py", "--ignore", "TL2")[0] == 0
    assert run("check", "bad.py", "--select", "TL201")[0] == 1
    assert run("check", "bad.py", "--select", "TL3,TL4")[0] == 0
    assert run("check", "bad.py", "--fail-on", "error")[0] == 1
    write(project / "warn.py", """\
        def build_model():
            return Net().eval()
        """)
    assert run("check", "warn.py")[0] == 1
    assert run("check", "warn.py", "--fail-on", "error")[0] == 0


def test_suppression_comments(project):
    suppressed = BUGGY.replace("optimizer.zero_grad()", "optimizer.zero_grad()  # noqa: TL201")
    write(project / "a.py", suppressed)
    write(project / "b.py", BUGGY.replace("optimizer.zero_grad()", "optimizer.zero_grad()  # trainlint: ignore[TL201]"))
    write(project / "c.py", BUGGY.replace("optimizer.zero_grad()", "optimizer.zero_grad()  # noqa"))
    write(project / "d.py", BUGGY.replace("optimizer.zero_grad()", "optimizer.zero_grad()  # noqa: TL401"))
    code, output = run("check", ".", "--format", "json")
    assert [f["path"] for f in json.loads(output)] == [os.path.join(".", "d.py")]


def test_config_file(project):
    write(project / "pyproject.toml", """\
        [tool.trainlint]
        ignore = ["TL201"]
        per-file-ignores = {"legacy/*" = ["TL4"]}
        severity = {TL402 = "info"}
        """)
    write(project / "train.py", BUGGY)
    assert run("check", "train.py") == (0, "All checks passed!\n")
    assert run("check", "train.py", "--select", "TL201")[0] == 1  # flags override the file


@pytest.mark.parametrize("table, message", [
    ('colour = "red"', "unknown key 'colour'"),
    ('fail-on = "fatal"', "'fail-on' must be one of"),
    ('select = ["TL999"]', "unknown rule code or prefix 'TL999'"),
    ('select = "TL201"', "'select' must be a list of strings"),
])
def test_bad_config_is_one_clear_line(project, table, message):
    write(project / "pyproject.toml", f"[tool.trainlint]\n{table}\n")
    write(project / "train.py", BUGGY)
    code, output = run("check", "train.py")
    assert code == 2
    assert message in output and "Traceback" not in output


def test_usage_errors_exit_2(project):
    assert run("check", "--format", "xml")[0] == 2
    assert run("check", "--select", "TL999")[0] == 2
    assert run("explain", "TL999")[0] == 2


def test_rules_and_explain():
    code, output = run("rules")
    assert code == 0
    assert output.splitlines()[0].split()[:3] == ["TL101", "builder-returns-eval-model", "warning"]
    code, output = run("explain", "tl301")
    assert code == 0 and "Example (flagged):" in output and "Use instead:" in output


def test_cache_gives_same_findings(project):
    write(project / "train.py", BUGGY)
    first = run("check", ".", "--format", "json")
    entries = sum(len(files) for _, _, files in os.walk(project / "cache"))
    assert entries >= 2  # one result plus the cache's .gitignore
    assert run("check", ".", "--format", "json") == first
    write(project / "train.py", BUGGY.replace("optimizer.step()", "optimizer.step()\n        optimizer.zero_grad()")
          .replace("    optimizer.zero_grad()\n    loss", "    loss"))
    assert run("check", ".", "--format", "json")[0] == 0  # content changed: not served from cache


def test_parallel_matches_serial(project):
    for i in range(12):
        write(project / f"m{i}.py", BUGGY if i % 3 == 0 else "x = 1\nloss.backward()\n")
    serial = run("check", ".", "--no-cache", "--jobs", "1", "--format", "json")
    parallel = run("check", ".", "--no-cache", "--jobs", "2", "--format", "json")
    assert serial == parallel and len(json.loads(serial[1])) == 4


def test_cross_file_builder_is_an_error(project):
    write(project / "app" / "models.py", """\
        def build_model():
            model = Net()
            return model.eval()
        """)
    write(project / "app" / "train.py", """\
        from models import build_model

        def main():
            model = build_model()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        """)
    [finding] = json.loads(run("check", "app", "--format", "json")[1])
    assert (finding["code"], finding["severity"], finding["line"]) == ("TL101", "error", 3)
    assert finding["fix"]["safe"] is True and finding["fix"]["edits"][0]["content"] == "model"
    [alone] = json.loads(run("check", "app/models.py", "--format", "json")[1])
    assert alone["severity"] == "warning"  # one file alone: the weaker per-file fact


def test_cross_file_validation_helper(project):
    write(project / "engine.py", """\
        def evaluate(net, loader):
            net.eval()
            return sum(net(x).sum().item() for x in loader)
        """)
    write(project / "train.py", """\
        from engine import evaluate

        model.train()
        for epoch in range(10):
            for x, y in loader:
                optimizer.zero_grad()
                F.mse_loss(model(x), y).backward()
                optimizer.step()
            evaluate(model, val_loader)
        """)
    findings = json.loads(run("check", ".", "--format", "json")[1])
    assert [(f["code"], f["line"]) for f in findings] == [("TL102", 9)]


@pytest.mark.parametrize("source, libcst_needed", [
    (BUGGY, True),  # a structural fix is computed with LibCST
    ("for images, labels in loader:\n    images.cuda()\n", False),  # a text fix, and nothing else to pay for
])
def test_check_never_imports_torch(project, source, libcst_needed):
    write(project / "train.py", source)
    probe = ("import sys\nfrom trainlint.cli import main\nsys.argv = ['trainlint', 'check', 'train.py', '--no-cache']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'\n"
             f"assert ('libcst' in sys.modules) == {libcst_needed}, 'libcst imported or not'\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_trace_without_torch_is_one_clear_line(project):
    write(project / "train.py", BUGGY)
    probe = ("import sys\nsys.modules['torch'] = None  # as if PyTorch were not installed\n"
             "from trainlint.cli import main\nsys.argv = ['trainlint', 'trace', 'train.py']\nmain()\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "trace needs PyTorch" in result.stderr
    assert "pip install 'trainlint[trace]'" in result.stderr and "Traceback" not in result.stderr


def test_python_dash_m_and_version():
    result = subprocess.run([sys.executable, "-m", "trainlint", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("trainlint, version ")


def test_notebook_cells(project):
    notebook = {"cells": [
        {"cell_type": "markdown", "source": ["# training"]},
        {"cell_type": "code", "source": ["%matplotlib inline\n", "import torch\n", "!nvidia-smi\n",
                                         "!pip install -q \\\n", "    transformers \\\n", "    accelerate\n"]},
        {"cell_type": "code", "source": BUGGY.replace("    optimizer.zero_grad()", "    %time optimizer.zero_grad()")
            .splitlines(keepends=True)},
        {"cell_type": "code", "source": BUGGY.splitlines(keepends=True)},
        {"cell_type": "code", "source": "%%bash\nthis is not python\n"},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (project / "train.ipynb").write_text(json.dumps(notebook))
    (project / "broken.ipynb").write_text('{"cells": [')
    code, output = run("check", ".", "--format", "json")
    findings = [(os.path.basename(f["path"]), f["code"], f.get("cell"), f["line"]) for f in json.loads(output)]
    # `%time zero_grad()` runs the statement, so cell 3 has the bug as much as cell 4
    assert findings == [("broken.ipynb", "TL000", None, 1), ("train.ipynb", "TL201", 3, 2),
                        ("train.ipynb", "TL201", 4, 2)]
    assert "cell 4, line 6" in json.loads(output)[2]["message"]
    assert "train.ipynb:cell 4:2:5: TL201" in run("check", "train.ipynb")[1]
    assert "train.ipynb:cell 3:2:11: TL201" in run("check", "train.ipynb")[1]  # after `%time `


def test_notebook_cell_indented_as_a_whole(project):
    """IPython removes the first line's indentation from every line of a cell that starts with it:
    such a cell runs, and findings keep their columns in the cell."""
    cell = "".join("  " + line for line in BUGGY.splitlines(keepends=True))
    notebook = {"cells": [{"cell_type": "code", "source": cell}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (project / "indented.ipynb").write_text(json.dumps(notebook))
    assert "indented.ipynb:cell 1:2:7: TL201" in run("check", "indented.ipynb")[1]
    broken = {"cells": [{"cell_type": "code", "source": "x = 1\n  y = 2\n"}], "metadata": {}, "nbformat": 4,
              "nbformat_minor": 5}
    (project / "indented.ipynb").write_text(json.dumps(broken))
    assert "indented.ipynb:cell 1:2:" in run("check", "indented.ipynb")[1]
    assert "TL000 cannot parse: unexpected indent" in run("check", "indented.ipynb")[1]


def test_notebook_cell_output_is_not_thrown_away(project):
    """A cell's last expression is displayed (`m.to(device)` shows the moved copy, also over two
    lines); with a trailing `;`, anywhere else in the cell, or inside its last statement (a loop),
    the value is thrown away."""
    cells = ["import torch\nm = torch.ones(2, 2)\ndevice = 'cuda'\n", "m.to(device)", "m.to(device);  # quiet",
             "m.to(device)\nprint(m)", "m.to(\n    device)\n", "for _ in range(2):\n    m.to(device)"]
    notebook = {"cells": [{"cell_type": "code", "source": c} for c in cells], "metadata": {}, "nbformat": 4,
                "nbformat_minor": 5}
    (project / "demo.ipynb").write_text(json.dumps(notebook))
    findings = json.loads(run("check", "demo.ipynb", "--format", "json")[1])
    assert [(f["code"], f["cell"], f["line"], f["column"]) for f in findings] == [
        ("TL702", 3, 1, 1), ("TL702", 4, 1, 1), ("TL702", 6, 2, 5)]  # a loop's body is no cell output


def test_notebook_operators_starting_a_continued_line(project):
    """`%` and `!` that start a line inside brackets, a triple-quoted string or after a backslash
    are Python (the modulo operator, `!=`), not magics; `name = !command` captures a value the code
    does not show; `name?` asks IPython for help: the cell parses (a notebook no rule can match is
    still syntax-checked)."""
    cell = ('print(\n    "Iter %d, loss %.3f"\n    % (step, loss)\n)\nsame = (step\n        != 0)\n'
            'note = """\n% not a magic\n!not a shell line\n"""\nrest = 7 \\\n    % 3\n%matplotlib inline\n'
            '!nvidia-smi\nos_info = !uname -o\nfiles, = %sx ls\nprint(os_info[0], files)\ntorch.*Tensor?\n'
            'for name in files:\n    name.split??\n')
    notebook = {"cells": [{"cell_type": "code", "source": cell}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (project / "report.ipynb").write_text(json.dumps(notebook))
    code, output = run("check", ".", "--format", "json")
    assert (code, json.loads(output)) == (0, [])


def test_progress_only_on_a_terminal(project, monkeypatch):
    from trainlint import cli as cli_module

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert cli_module._terminal_progress() is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert cli_module._terminal_progress() is not None
    monkeypatch.setenv("CI", "true")
    assert cli_module._terminal_progress() is None


def test_statistics_and_quiet(project):
    write(project / "a.py", BUGGY)
    write(project / "b.py", BUGGY)
    code, output = run("check", ".", "--statistics")
    assert code == 1
    assert output.splitlines()[0].split() == ["2", "TL201", "zero-grad-every-micro-batch"]
    assert output.splitlines()[-1].startswith("Found 2 findings")
    code, output = run("check", ".", "--statistics", "--format", "json")
    assert json.loads(output) == [{"code": "TL201", "name": "zero-grad-every-micro-batch", "count": 2, "fixable": 0}]
    code, output = run("check", ".", "-q")
    assert code == 1 and output.splitlines() == ["Found 2 findings (2 errors). 2 more with --fix --unsafe-fixes."]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_odd_paths_get_precise_messages(project):
    write(project / "good.py", BUGGY)
    os.mkfifo(project / "pipe.py")  # opening it would block: it must not be read
    (project / "folder.py").mkdir()
    write(project / "folder.py" / "inside.py", BUGGY)
    code, output = run("check", ".", "--format", "json")
    findings = json.loads(output)
    by_file = {(os.path.relpath(f["path"], project), f["code"]): f["message"] for f in findings}
    assert "not a regular file: a FIFO" in by_file[("pipe.py", "TL000")]
    assert ("good.py", "TL201") in by_file and (os.path.join("folder.py", "inside.py"), "TL201") in by_file
    assert sum(1 for path, _ in by_file if path.startswith("folder.py")) == 1  # walked once, said once
    code, output = run("check", "pipe.py", "--format", "json")
    assert [f["message"] for f in json.loads(output)] == ["not a regular file: a FIFO (named pipe), not linted"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_says_permission_denied(project):
    path = write(project / "secret.py", BUGGY)
    path.chmod(0)
    try:
        code, output = run("check", "secret.py", "--format", "json")
    finally:
        path.chmod(0o644)
    assert [f["message"] for f in json.loads(output)] == ["cannot read file: Permission denied"]


def test_github_action_steps(tmp_path):
    """action.yml's steps, run as GitHub runs them: install into a fresh environment, then check."""
    yaml = pytest.importorskip("yaml")
    root = os.path.join(os.path.dirname(__file__), os.pardir)
    action = yaml.safe_load(open(os.path.join(root, "action.yml")))
    assert action["runs"]["using"] == "composite"
    inputs = {name: spec["default"] for name, spec in action["inputs"].items()}
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "env")], check=True)
    env = dict(os.environ, PATH=str(tmp_path / "env" / "bin") + os.pathsep + os.environ["PATH"])
    env.pop("VIRTUAL_ENV", None)
    write(tmp_path / "project" / "train.py", BUGGY)
    results = []
    for step in action["runs"]["steps"]:
        command = step["run"].replace("${{ github.action_path }}", os.path.abspath(root))
        for name, value in inputs.items():
            command = command.replace("${{ inputs.%s }}" % name, value)
        results.append(subprocess.run([step["shell"], "-c", command], cwd=tmp_path / "project", env=env,
                                      capture_output=True, text=True, timeout=600))
    install, check = results
    assert install.returncode == 0, install.stderr[-2000:]
    assert check.returncode == 1
    assert check.stdout.startswith("::error file=train.py,line=2,")


def test_exclusion_globs_match_names_and_root_relative_folders(project):
    write(project / "data" / "train.py", BUGGY)  # `data/` names the root's folder only
    write(project / "src" / "data" / "train.py", BUGGY)
    write(project / "pkg.egg-info" / "train.py", BUGGY)  # a default glob, matched by name
    write(project / "runs" / "exp1" / "scratch_train.py", BUGGY)
    code, output = run("check", ".", "--format", "json", "--extend-exclude", "data/,scratch_*.py")
    paths = {os.path.normpath(f["path"]) for f in json.loads(output)}
    assert paths == {os.path.normpath("src/data/train.py")}
