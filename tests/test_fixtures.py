"""`trainlint check fixtures/` reports each incident's static bugs and nothing in the twins."""
import json
import os

from click.testing import CliRunner

from trainlint.cli import cli

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures")
EXPECTED = {
    ("video_classification", "model_builder.py", "TL101", "error"),
    ("video_classification", "train.py", "TL304", "warning"),
    ("regression_pipeline", "train.py", "TL301", "error"),
    ("regression_pipeline", "train.py", "TL401", "error"),
    ("regression_pipeline", "train.py", "TL207", "info"),
    ("regression_pipeline", "train.py", "TL204", "error"),
    ("contrastive_regions", "train.py", "TL201", "error"),
    ("contrastive_regions", "train.py", "TL305", "warning"),
    ("contrastive_regions", "train.py", "TL206", "warning"),
    ("multitask_famo", "train.py", "TL208", "error"),
    ("segmentation_fp16", "train.py", "TL503", "warning"),
    ("segmentation_fp16", "train.py", "TL305", "warning"),
    ("multitask_famo", "train.py", "TL305", "warning"),
}


def test_fixtures(tmp_path):
    result = CliRunner().invoke(cli, ["check", FIXTURES, "--format", "json", "--cache-dir", str(tmp_path)])
    findings = json.loads(result.output)
    assert result.exit_code == 1
    assert not [f for f in findings if os.sep + "fixed" + os.sep in f["path"]]
    found = set()
    for f in findings:
        parts = os.path.normpath(f["path"]).split(os.sep)
        assert parts[-2] == "buggy"
        found.add((parts[-3], parts[-1], f["code"], f["severity"]))
    assert found == EXPECTED
