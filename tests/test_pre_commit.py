"""The pre-commit hook, installed by the real `pre-commit` tool from this repository (it builds
the hook's environment from the package registry, as a user's machine would)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUGGY = """\
for i, (x, y) in enumerate(loader):
    optimizer.zero_grad()
    loss = criterion(model(x), y) / accum
    loss.backward()
    if (i + 1) % accum == 0:
        optimizer.step()
"""


def pre_commit():
    found = shutil.which("pre-commit", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if found is None:
        pytest.skip("pre-commit is not installed (pip install -e '.[test]')")
    if not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("try-repo needs this checkout to be a git repository")
    return found


def test_hook_fails_on_a_bug_and_passes_clean_code(tmp_path):
    tool = pre_commit()
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(BUGGY)
    (project / "clean.py").write_text("print('hello')\n")
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), TRAINLINT_CACHE_DIR=str(tmp_path / "c"))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "."], cwd=project, check=True)

    def hook(*files):
        return subprocess.run([tool, "try-repo", ROOT, "trainlint", "--files", *files], cwd=project, env=env,
                              capture_output=True, text=True, timeout=600)

    failing = hook("train.py")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "train.py:2:5: TL201" in failing.stdout
    passing = hook("clean.py")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "Passed" in passing.stdout
