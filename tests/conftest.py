import textwrap

import pytest

from trainlint.analysis import Settings, lint_bytes
from trainlint.rule import all_rules
from trainlint.semantics.summaries import RecordingIndex


def lint_text(source: str, codes=None, path="example.py"):
    """Findings (as JSON dicts) for a snippet, linted alone."""
    settings = Settings(tuple(codes or all_rules()))
    data = textwrap.dedent(source).strip("\n").encode()
    return lint_bytes(data, path, ("example", ""), settings, RecordingIndex())["findings"]


@pytest.fixture
def lint():
    return lint_text


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh current folder with its own trainlint cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAINLINT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path
