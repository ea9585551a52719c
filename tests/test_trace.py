"""`trainlint trace` on CPU with real tiny models: the fixtures' verdicts and runtime findings,
the corrected twins, and the ways a script can end."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from trainlint.trace import exit_code, trace  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures")


def fixture(incident, variant="buggy"):
    return os.path.join(FIXTURES, incident, variant, "train.py")


def verdicts(report):
    return {(f["code"], f["verdict"]) for f in report["findings"]}


FIXTURE_VERDICTS = {  # what tracing each buggy fixture shows (docs/trace-confirmation.md cites it)
    "video_classification": {("TL101", "confirmed"), ("TR009", None)},
    "regression_pipeline": {("TL301", "confirmed"), ("TL204", "confirmed"), ("TL401", "confirmed"),
                            ("TR001", None), ("TR002", None)},
    "contrastive_regions": {("TL201", "confirmed"), ("TL206", "confirmed"), ("TR005", None)},
    "segmentation_fp16": {("TL503", "confirmed"), ("TR005", None)},
    "multitask_famo": {("TR005", None)},
}


@pytest.mark.parametrize("incident, expected", sorted(FIXTURE_VERDICTS.items()))
def test_buggy_fixture(incident, expected):
    report = trace(fixture(incident), [], steps=8)
    assert report["script_exit"] == "stopped-after-steps"
    assert report["steps"] == 8 and report["micro_batches"] >= 8
    assert expected <= verdicts(report), verdicts(report)
    assert exit_code(report, "error") == 1


@pytest.mark.parametrize("incident", ["video_classification", "regression_pipeline", "contrastive_regions",
                                      "segmentation_fp16", "multitask_famo"])
def test_corrected_twin_has_no_error(incident):
    report = trace(fixture(incident, "fixed"), [], steps=8)
    assert report["script_exit"] == "stopped-after-steps"
    errors = [f for f in report["findings"] if f["severity"] == "error" and f["verdict"] in (None, "confirmed",
                                                                                               "runtime-only")]
    assert errors == []
    assert exit_code(report, "error") == 0


def test_constant_loss_is_explained(tmp_path):
    script = tmp_path / "uniform.py"
    script.write_text(textwrap.dedent("""\
        import torch
        model = torch.nn.Linear(4, 12)
        torch.nn.init.zeros_(model.weight); torch.nn.init.zeros_(model.bias)
        model.requires_grad_(False)
        model.bias.requires_grad_(True)
        optimizer = torch.optim.SGD([model.bias], lr=0.0)
        for i in range(64):
            x = torch.randn(16, 4)
            loss = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 12, (16,))) / 8
            loss.backward()
            if (i + 1) % 8 == 0:
                optimizer.step()
                optimizer.zero_grad()
        """))
    report = trace(str(script), [], steps=4)
    [constant] = [f for f in report["findings"] if f["code"] == "TR004"]
    assert "ln(12)/8" in constant["message"] and "12 classes" in constant["message"]


SCRIPT_STEPS = """\
import sys, torch
model = torch.nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
try:
    for i in range({n}):
        opt.zero_grad()
        model(torch.randn(4, 2)).pow(2).mean().backward()
        opt.step()
    {after}
finally:
    open(sys.argv[1], "w").write("cleaned up")
"""


def test_stop_after_steps_runs_finally(tmp_path):
    script, marker = tmp_path / "s.py", tmp_path / "marker"
    script.write_text(SCRIPT_STEPS.format(n=100, after="pass"))
    report = trace(str(script), [str(marker)], steps=3)
    assert (report["script_exit"], report["steps"]) == ("stopped-after-steps", 3)
    assert marker.read_text() == "cleaned up"


@pytest.mark.parametrize("after, script_exit, exit_code, error", [
    ("sys.exit(3)", "completed", 3, None),
    ("raise ValueError('bad batch')", "exception", None, "ValueError: bad batch"),
    ("raise KeyboardInterrupt", "exception", None, "KeyboardInterrupt"),
])
def test_script_endings(tmp_path, after, script_exit, exit_code, error):
    script, marker = tmp_path / "s.py", tmp_path / "marker"
    script.write_text(SCRIPT_STEPS.format(n=2, after=after))
    report = trace(str(script), [str(marker)], steps=8)
    assert (report["script_exit"], report["exit_code"], report["steps"]) == (script_exit, exit_code, 2)
    assert (error is None and report["error"] is None) or error in report["error"]
    assert marker.exists()


def test_script_traceback_shows_user_frames_only(tmp_path):
    """An error raised inside a PyTorch call the tracer wraps (optimizer.step): the report's
    traceback reads as the script's own run would, from its module frame down into torch."""
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent("""\
        import torch

        class Exploding(torch.optim.SGD):
            def step(self, closure=None):
                raise RuntimeError("boom in step")

        def train(model, opt):
            for _ in range(3):
                opt.zero_grad()
                model(torch.randn(2, 4)).sum().backward()
                opt.step()

        model = torch.nn.Linear(4, 1)
        train(model, Exploding(model.parameters(), lr=0.1))
        """))
    report = trace(str(script), [], steps=8)
    error = report["error"]
    assert report["script_exit"] == "exception" and error.startswith("Traceback (most recent call last):")
    frames = [line for line in error.splitlines() if line.startswith('  File "')]
    names = [line.split(", in ")[-1] for line in frames]
    assert names[:2] == ["<module>", "train"] and names[-1] == "step", error  # torch's own frames may sit between
    assert "runpy" not in error and os.path.join("trainlint", "trace") not in error
    assert error.rstrip().endswith("RuntimeError: boom in step")


def test_timeout(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import time\nwhile True:\n    time.sleep(0.01)\n")
    report = trace(str(script), [], steps=8, timeout=0.5)
    assert report["script_exit"] == "timeout"


def test_everything_is_restored(tmp_path):
    from torch.optim import optimizer

    original = (torch.Tensor.backward, torch.optim.Optimizer.zero_grad, torch.nn.Module.train)
    script = tmp_path / "s.py"
    script.write_text(SCRIPT_STEPS.format(n=5, after="pass"))
    trace(str(script), [str(tmp_path / "m")], steps=2)
    assert (torch.Tensor.backward, torch.optim.Optimizer.zero_grad, torch.nn.Module.train) == original
    assert not optimizer._global_optimizer_pre_hooks and not optimizer._global_optimizer_post_hooks


def test_cli_json_contract(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trainlint", "trace", fixture("regression_pipeline"), "--steps", "4",
                             "--format", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert set(report) >= {"steps", "micro_batches", "findings", "script_exit"}
    assert report["steps"] == 4 and report["script_exit"] == "stopped-after-steps"
    steps = [e for row in report["timeline"] for e in row["events"] if e["kind"] == "step"]
    assert len(steps) == 4 and all(set(e) >= {"grad_norm", "group_grad_norms", "update", "lr"} for e in steps)
    for finding in report["findings"]:
        assert set(finding) >= {"code", "severity", "message", "path", "line", "verdict"}
        assert finding["verdict"] in ("confirmed", "not-observed", "refuted", "runtime-only", None)


def test_json_is_strict_with_non_finite_losses():
    result = subprocess.run([sys.executable, "-m", "trainlint", "trace", fixture("multitask_famo"), "--steps", "8",
                             "--format", "json"], capture_output=True, text=True, timeout=300)

    def reject(constant):
        raise AssertionError(f"{constant} in JSON output")

    report = json.loads(result.stdout, parse_constant=reject)
    assert None in [row["loss"] for row in report["timeline"]]  # the NaN losses
    assert "TR005" in {f["code"] for f in report["findings"]}


def test_html_timeline(tmp_path):
    out = tmp_path / "trace.html"
    result = subprocess.run([sys.executable, "-m", "trainlint", "trace", fixture("regression_pipeline"), "--steps", "2",
                             "--format", "html", "--output", str(out)], capture_output=True, text=True, timeout=300)
    page = out.read_text()
    assert result.returncode == 1
    assert page.startswith("<!doctype html>") and "<svg" in page and "TL301" in page and "backward @" in page


DDP_SCRIPT = """\
import sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = DDP(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
try:
    for i in range(20):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        if not ("--diverge" in sys.argv and rank == 1 and i % 2):
            opt.step()
finally:
    dist.destroy_process_group()
"""


def torchrun_trace(tmp_path, script, *script_args):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun is not installed next to this Python")
    path = tmp_path / "train.py"
    path.write_text(script)
    import socket

    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "trainlint", "trace", "--steps", "4", "--timeout", "120", "--format", "json", "--",
               torchrun, "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={port}", str(path),
               *script_args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=240)
    return result, json.loads(result.stdout)


@pytest.mark.parametrize("diverge", [False, True])
def test_torchrun_two_ranks_gloo(tmp_path, diverge):
    result, report = torchrun_trace(tmp_path, DDP_SCRIPT, *(["--diverge"] if diverge else []))
    assert [r["rank"] for r in report["ranks"]] == [0, 1]
    divergent = [f for f in report["findings"] if f["code"] == "TR010"]
    if diverge:
        assert divergent and result.returncode == 1
        assert [r["steps"] for r in report["ranks"]] == [4, 2]
    else:
        assert not divergent and result.returncode == 0
        assert [r["steps"] for r in report["ranks"]] == [4, 4]


REPLICA_SCRIPT = """\
import sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
mode = sys.argv[1]
if mode != "no-process-group":
    dist.init_process_group("gloo")
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
wrapped = DDP(model) if mode != "no-process-group" else model
opt = torch.optim.SGD(model.parameters(), lr=0.1)
rank = dist.get_rank() if mode != "no-process-group" else int(__import__("os").environ["RANK"])
torch.manual_seed(1 + rank)  # each rank its own data, as a sampler would give
for i in range(8):
    opt.zero_grad()
    forward = model if mode == "bare-on-odd-steps" and i % 2 else wrapped
    forward(torch.randn(8, 4)).pow(2).mean().backward()
    opt.step()
if mode != "no-process-group":
    dist.destroy_process_group()
"""


@pytest.mark.parametrize("mode, drifts", [("bare-on-odd-steps", True), ("ddp-every-step", False),
                                          ("no-process-group", False)])
def test_replica_divergence_under_torchrun(tmp_path, mode, drifts):
    result, report = torchrun_trace(tmp_path, REPLICA_SCRIPT, mode)
    assert [r["steps"] for r in report["ranks"]] == [4, 4]
    drift = [f for f in report["findings"] if f["code"] == "TR011"]
    if drifts:
        [finding] = drift
        assert "after optimizer step 2" in finding["message"] and "weight" in finding["message"]
        assert result.returncode == 1
    else:
        assert drift == [] and result.returncode == 0, report["findings"]
