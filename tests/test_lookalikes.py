"""Correct training code in the styles of real libraries (written for these tests, in the manner
of HF accelerate, Lightning, DeepSpeed, timm, mmengine and ultralytics): every rule must stay
silent on all of it."""
import json
import os

import pytest
from click.testing import CliRunner

from trainlint.cli import cli

FOLDER = os.path.join(os.path.dirname(__file__), "lookalikes")


@pytest.mark.parametrize("name", sorted(os.listdir(FOLDER)))
def test_no_finding_on_correct_framework_code(name, tmp_path):
    result = CliRunner().invoke(cli, ["check", os.path.join(FOLDER, name), "--format", "json", "--no-cache"])
    assert json.loads(result.output) == []
