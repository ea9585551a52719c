"""The tracer's first duty: never change the outcome of the user's run, and never say "nothing
wrong" about what it did not check. Real tiny models on CPU, each run traced and untraced."""
import json
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from trainlint.trace import UNCHECKED_EXIT, exit_code, trace  # noqa: E402
from trainlint.trace.recorder import Recorder  # noqa: E402


def write(tmp_path, source, name="train.py"):
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    return script


def codes(report):
    return {f["code"] for f in report["findings"] if f["verdict"] in ("confirmed", "runtime-only", None)}


# -- a failure inside the tracer stands the tracer aside; the script ends as it would untraced ----

EVERY_HOOK_SCRIPT = """\
import json, sys
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 1))
criterion = nn.MSELoss()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
for step in range(6):
    model.train()
    opt.zero_grad()
    loss = criterion(model(torch.randn(8, 4)), torch.randn(8, 1))
    loss.backward()
    opt.step()
    scheduler.step()
with open(sys.argv[1], "w") as handle:
    json.dump({"loss": loss.item(), "weights": [p.detach().sum().item() for p in model.parameters()]}, handle)
"""
HAND_WRITTEN_UPDATE_SCRIPT = """\
import json, sys
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Linear(4, 1)
for step in range(6):
    model.zero_grad()
    loss = nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
    loss.backward()
    for p in model.parameters():
        p.data.add_(p.grad, alpha=-0.1)
with open(sys.argv[1], "w") as handle:
    json.dump({"loss": loss.item(), "weights": [p.detach().sum().item() for p in model.parameters()]}, handle)
"""


def _ends(tmp_path, source, traced, steps=100):
    script = write(tmp_path, source)
    result = tmp_path / ("traced.json" if traced else "plain.json")
    report = None
    if traced:
        report = trace(str(script), [str(result)], steps=steps)
        assert report["error"] is None, report["error"]
    else:
        subprocess.run([sys.executable, str(script), str(result)], check=True)
    return json.loads(result.read_text()), report


@pytest.mark.parametrize("part, source", [
    ("_before_step", EVERY_HOOK_SCRIPT), ("_after_step", EVERY_HOOK_SCRIPT), ("_before_forward", EVERY_HOOK_SCRIPT),
    ("_note_backward", EVERY_HOOK_SCRIPT), ("_zero_grad", EVERY_HOOK_SCRIPT), ("_train", EVERY_HOOK_SCRIPT),
    ("_scheduler_step", EVERY_HOOK_SCRIPT), ("_after_loss", EVERY_HOOK_SCRIPT),
    ("_remember_for_manual_update", HAND_WRITTEN_UPDATE_SCRIPT),
    ("_manual_update_since_last_backward", HAND_WRITTEN_UPDATE_SCRIPT),
])
def test_a_failing_tracer_part_leaves_the_run_as_it_was(tmp_path, monkeypatch, capfd, part, source):
    untraced, _ = _ends(tmp_path, source, traced=False)

    def broken(*args, **kwargs):
        raise RuntimeError(f"injected failure in {part}")

    monkeypatch.setattr(Recorder, part, broken)
    traced, report = _ends(tmp_path, source, traced=True)
    assert traced == untraced
    assert f"injected failure in {part}" in report["tracer_error"]
    assert f"injected failure in {part}" in capfd.readouterr().err  # the tracer's own traceback, on stderr
    assert report["unchecked"] and "tracer failed" in report["unchecked"]
    assert exit_code(report, "error") in (1, UNCHECKED_EXIT)


# -- closures: one step, whatever the closure runs inside it -----------------------------------

LBFGS = """\
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(64, 4); y = x @ torch.randn(4, 1)
model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
for step in range(10):
    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)
"""


def test_lbfgs_is_one_step_per_call_and_clean(tmp_path):
    report = trace(str(write(tmp_path, LBFGS)), [], steps=6)
    assert report["steps"] == 6 and report["micro_batches"] == 6
    assert codes(report) == set(), report["findings"]
    assert exit_code(report, "info") == 0


def test_closure_based_sgd_is_clean(tmp_path):
    source = LBFGS.replace("torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)",
                           "torch.optim.SGD(model.parameters(), lr=0.05)")
    report = trace(str(write(tmp_path, source)), [], steps=6)
    assert report["steps"] == 6 and codes(report) == set(), report["findings"]


def test_a_closure_that_never_clears_gradients_is_still_tl203(tmp_path):
    source = LBFGS.replace("        opt.zero_grad()\n", "").replace(
        "torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)", "torch.optim.SGD(model.parameters(), lr=0.01)")
    report = trace(str(write(tmp_path, source)), [], steps=6)
    assert "TL203" in codes(report), report["findings"]


# -- eval mode: evidence only when the eval-mode output reaches backward() -----------------------

VALIDATION_WITH_GRAD = """\
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(4)]
for epoch in range(5):
    model.train()
    for x, y in batches:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    model.eval()
    score = nn.functional.mse_loss(model(batches[0][0]), batches[0][1]).item()  # no no_grad: still not training
"""


def test_validation_without_no_grad_is_not_training_in_eval_mode(tmp_path):
    report = trace(str(write(tmp_path, VALIDATION_WITH_GRAD)), [], steps=12)
    assert report["steps"] == 12
    assert not codes(report) & {"TL101", "TL102"}, report["findings"]


def test_eval_left_on_after_validation_is_tl102(tmp_path):
    source = VALIDATION_WITH_GRAD.replace("    model.train()\n", "")
    report = trace(str(write(tmp_path, source)), [], steps=12)
    assert "TL102" in codes(report) and "TL101" not in codes(report), report["findings"]


def test_a_model_built_in_eval_mode_is_tl101(tmp_path):
    source = VALIDATION_WITH_GRAD.replace("    model.train()\n", "").replace(
        "opt = torch.optim", "model.eval()\nopt = torch.optim").replace("    model.eval()\n    score", "    score")
    report = trace(str(write(tmp_path, source)), [], steps=6)
    assert "TL101" in codes(report) and "TL102" not in codes(report), report["findings"]


# -- updates written by hand are steps -------------------------------------------------------------

def test_hand_written_updates_are_steps(tmp_path):
    report = trace(str(write(tmp_path, HAND_WRITTEN_UPDATE_SCRIPT)), [str(tmp_path / "out.json")], steps=4)
    assert report["steps"] == 4 and report["unchecked"] is None
    assert codes(report) == set(), report["findings"]


def test_hand_written_updates_that_never_clear_gradients_are_tl203(tmp_path):
    source = HAND_WRITTEN_UPDATE_SCRIPT.replace("    model.zero_grad()\n", "")
    report = trace(str(write(tmp_path, source)), [str(tmp_path / "out.json")], steps=4)
    assert report["steps"] == 4 and "TL203" in codes(report), report["findings"]


# -- honest outcomes ---------------------------------------------------------------------------

@pytest.mark.parametrize("source, reason", [
    ("import torch\nprint(torch.ones(2).sum())\n", "no optimizer step ran"),
    ("import torch\nmodel = torch.nn.Linear(2, 1)\nraise RuntimeError('data not found')\n",
     "failed before its first optimizer step"),
])
def test_a_run_that_checked_nothing_says_so(tmp_path, source, reason):
    script = write(tmp_path, source)
    result = subprocess.run([sys.executable, "-m", "trainlint", "trace", str(script)], capture_output=True, text=True)
    assert result.returncode == UNCHECKED_EXIT, result.stdout + result.stderr
    assert reason in result.stdout and "Nothing wrong" not in result.stdout


# -- torch.multiprocessing.spawn: every worker traced, stdout stays JSON -----------------------------

SPAWNED = """\
import torch
import torch.multiprocessing as mp
from torch import nn

def worker(rank, steps):
    torch.manual_seed(rank)
    print(f"worker {rank} starting")  # must not reach the report's stdout
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        {clear}
        nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1)).backward()
        opt.step()

if __name__ == "__main__":
    print("launching")
    mp.spawn(worker, args=(20,), nprocs=2)
"""


@pytest.mark.parametrize("clear, expected", [("opt.zero_grad()", set()), ("pass", {"TL203"})])
def test_spawned_workers_are_traced(tmp_path, clear, expected):
    script = write(tmp_path, SPAWNED.replace("{clear}", clear))
    result = subprocess.run([sys.executable, "-m", "trainlint", "trace", str(script), "--steps", "3",
                             "--format", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)  # the workers' prints went to stderr
    assert "worker 0 starting" in result.stderr and "launching" in result.stderr
    assert sorted(r["rank"] for r in report["ranks"]) == [0, 1]
    assert all(r["steps"] == 3 for r in report["ranks"]) and report["unchecked"] is None
    assert codes(report) == expected, report["findings"]
    assert result.returncode == 0  # TL203 is a warning; trace fails on errors unless told otherwise
