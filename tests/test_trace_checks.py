"""Each runtime check of `trainlint trace` on a small CPU script that has the problem, and on a
look-alike that must stay quiet (deliberate patterns real training code uses)."""
import json
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from trainlint.trace import trace  # noqa: E402
from trainlint.trace.checks import scaler_skipping  # noqa: E402

PRELUDE = """\
import torch
from torch import nn
torch.manual_seed(0)
data = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(64)]
"""


def observed(tmp_path, body, steps=6):
    """Codes the run showed (confirmed static findings, runtime-only evidence, TR findings), and the report."""
    script = tmp_path / "train.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    report = trace(str(script), [], steps=steps)
    assert report["error"] is None, report["error"]
    return {f["code"] for f in report["findings"] if f["verdict"] in ("confirmed", "runtime-only", None)}, report


CASES = {
    "TR003 parameters missing from the optimizer": ("""\
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
        for x, y in data:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """, {"TR003"}),
    "TR003 optimizer parameters the loss never uses": ("""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body, self.unused_head = nn.Linear(4, 1), nn.Linear(4, 3)
            def forward(self, x):
                return self.body(x)
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in data:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """, {"TR003"}),
    "TR005 names the parameter": ("""\
        model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in data:
            opt.zero_grad()
            (model(x).sqrt().sum() * 0 + nn.functional.mse_loss(model(x), y)).backward()
            opt.step()
        """, {"TR005"}),
    "TR006 the scaler skips most steps after its first": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
        for i, (x, y) in enumerate(data):
            loss = nn.functional.mse_loss(model(x), y) * (1.0 if i % 4 == 0 else float("inf"))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
        """, {"TR006"}),
    "TR007 the same batch every step": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = data[0]
        for _ in range(20):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """, {"TR007"}),
    "TR007 after a step taken before any model ran": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        opt.step()  # no gradients yet: only to silence the scheduler's ordering warning
        x, y = data[0]
        for _ in range(20):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """, {"TR007"}),
    "TL401 scheduler stepped every micro-batch": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=100)
        for i, (x, y) in enumerate(data):
            (nn.functional.mse_loss(model(x), y) / 4).backward()
            if (i + 1) % 4 == 0:
                opt.step()
                opt.zero_grad()
            scheduler.step()
        """, {"TL401"}),
    "TL202 zero_grad between backward and step": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in data:
            nn.functional.mse_loss(model(x), y).backward()
            opt.zero_grad()
            opt.step()
        """, {"TL202"}),
    "TL203 gradients never cleared": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for x, y in data:
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """, {"TL203"}),
    "TL501 plain step after a scaled backward": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
        for x, y in data:
            opt.zero_grad()
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            opt.step()
        """, {"TL501"}),
    "TL208 a NaN loss skipped after its backward, gradients kept": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i, (x, y) in enumerate(data):
            loss = nn.functional.mse_loss(model(x), y)
            if i == 2:
                loss = loss * float("nan")
            loss.backward()
            if not torch.isfinite(loss):
                continue
            opt.step()
            opt.zero_grad()
        """, {"TL208"}),
    "TL403 optimizer built on every iteration (line evidence)": ("""\
        model = nn.Linear(4, 1)
        for x, y in data:
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """, {"TL403"}),
    "TL702 tensor .to() result discarded (line evidence)": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in data:
            y.to(torch.float64)
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """, {"TL702"}),
    "TL206 warm-up counted in micro-batches (line evidence)": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        global_step, warmup_steps = 0, 100
        for i, (x, y) in enumerate(data):
            (nn.functional.mse_loss(model(x), y) / 4).backward()
            global_step += 1
            for group in opt.param_groups:
                group["lr"] = 0.1 * min(1.0, global_step / warmup_steps)
            if (i + 1) % 4 == 0:
                opt.step()
                opt.zero_grad()
        """, {"TL206"}),
    "TL207 an epoch's leftover micro-batches carried into the next step": ("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(5):
            for i, (x, y) in enumerate(data[:10]):
                (nn.functional.mse_loss(model(x), y) / 4).backward()
                if (i + 1) % 4 == 0:
                    opt.step()
                    opt.zero_grad()
        """, {"TL207"}),
    "TL102 model left in eval mode after validation": ("""\
        model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(10):
            for x, y in data[:4]:
                opt.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                model(data[-1][0])
        """, {"TL102"}),
}

LOOKALIKES = {
    # the TL207 case with epochs of 8 micro-batches instead of 10: windows of 4 leave nothing over
    "accumulation windows that divide the epoch (TL207 flagged, nothing carried over)":
        CASES["TL207 an epoch's leftover micro-batches carried into the next step"][0].replace("data[:10]", "data[:8]"),
    "frozen batch-norm statistics in a training model (mmdet norm_eval)": """\
        model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model.train()
        model[1].eval()
        for x, y in data:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """,
    "a frozen teacher in eval mode, called with gradients enabled": """\
        student = nn.Linear(4, 1)
        teacher = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1)).eval().requires_grad_(False)
        opt = torch.optim.SGD(student.parameters(), lr=0.1)
        for x, y in data:
            opt.zero_grad()
            nn.functional.mse_loss(student(x), teacher(x)).backward()
            opt.step()
        """,
    "frozen parameters passed to the optimizer": """\
        model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
        model[0].requires_grad_(False)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in data:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """,
    "a GradScaler skipping its first steps while the scale comes down": """\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=1e-18)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 75)
        for x, y in data:
            out = model(x)
            out.register_hook(lambda grad: grad * 1e17)  # gradients as large as fp16 ones are, relative to its range
            scaler.scale(nn.functional.mse_loss(out, y)).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
        """,
    "gradients cleared by hand (p.grad = None)": """\
        model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in data:
            for p in model.parameters():
                p.grad = None
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """,
    "gradient accumulation": """\
        model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i, (x, y) in enumerate(data):
            (nn.functional.mse_loss(model(x), y) / 4).backward()
            if (i + 1) % 4 == 0:
                opt.step()
                opt.zero_grad()
        """,
}


@pytest.mark.parametrize("name", CASES)
def test_check_fires(tmp_path, name):
    body, expected = CASES[name]
    codes, report = observed(tmp_path, body)
    assert expected <= codes, report["findings"]


@pytest.mark.parametrize("name", LOOKALIKES)
def test_lookalike_is_quiet(tmp_path, name):
    codes, report = observed(tmp_path, LOOKALIKES[name])
    assert codes == set(), report["findings"]
    assert report["steps"] == 6


def test_confirmed_finding_says_what_the_run_showed(tmp_path):
    codes, report = observed(tmp_path, CASES["TL401 scheduler stepped every micro-batch"][0])
    [finding] = [f for f in report["findings"] if f["code"] == "TL401"]
    assert finding["verdict"] == "confirmed"
    # 6 steps of 4 micro-batches; the 6th step ends the trace before its scheduler.step(), and the
    # step the scheduler's constructor takes is not the loop's
    assert finding["observed"] == "the scheduler stepped 23 times for 6 optimizer steps (train.py:13)"


def test_line_evidence_says_what_ran(tmp_path):
    body = """\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i, (x, y) in enumerate(data):
            loss = nn.functional.mse_loss(model(x), y)
            if i == 0:
                loss = loss / 4
            loss.backward()
            opt.step()
            opt.zero_grad()
        """
    codes, report = observed(tmp_path, body)
    [finding] = [f for f in report["findings"] if f["code"] == "TL301"]
    assert finding["verdict"] == "confirmed"
    assert finding["observed"].startswith("line 10 ran in 1 of the 6 iterations that reached backward()")


def test_line_evidence_refutes_a_constructor_that_ran_once(tmp_path):
    """TL403 flagged (the optimizer is built inside the epoch loop) but the loop ran once while the
    optimizer stepped six times: the run refutes it."""
    body = """\
        model = nn.Linear(4, 1)
        for epoch in range(1):
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            for x, y in data:
                opt.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                opt.step()
        """
    codes, report = observed(tmp_path, body)
    [finding] = [f for f in report["findings"] if f["code"] == "TL403"]
    assert finding["verdict"] == "refuted"


def test_line_evidence_never_replaces_another_tracer(tmp_path):
    """Under a debugger or coverage (a trace function already set) the other tool keeps its
    tracer. Before Python 3.12 line evidence then stays off and the report says what was not
    checked; 3.12's sys.monitoring lets both run."""
    body = CASES["TL403 optimizer built on every iteration (line evidence)"][0]
    script = tmp_path / "train.py"
    script.write_text(PRELUDE + textwrap.dedent(body))

    def other_tool(frame, event, arg):
        return None

    sys.settrace(other_tool)
    try:
        report = trace(str(script), [], steps=4)
        assert sys.gettrace() is other_tool
    finally:
        sys.settrace(None)
    [finding] = [f for f in report["findings"] if f["code"] == "TL403"]
    if hasattr(sys, "monitoring"):
        assert finding["verdict"] == "confirmed" and report["unchecked"] is None
    else:
        assert finding["verdict"] == "not-observed"
        assert "line evidence was off" in report["unchecked"]


def test_non_finite_gradient_names_the_parameter(tmp_path):
    codes, report = observed(tmp_path, CASES["TR005 names the parameter"][0])
    [finding] = [f for f in report["findings"] if f["code"] == "TR005"]
    assert "(first: 0.weight)" in finding["message"]


def test_never_used_parameter_is_named(tmp_path):
    codes, report = observed(tmp_path, CASES["TR003 optimizer parameters the loss never uses"][0])
    [finding] = [f for f in report["findings"] if f["code"] == "TR003"]
    assert "2 parameters" in finding["message"] and "unused_head.weight" in finding["message"]


def test_skipped_scaler_step_closes_the_accumulation_window(tmp_path):
    """A step the scaler skipped is still the end of a window: the zero_grad after it is not TL201."""
    codes, report = observed(tmp_path, LOOKALIKES["a GradScaler skipping its first steps while the scale comes down"])
    kinds = [e["kind"] for row in report["timeline"] for e in row["events"]]
    assert "skipped_step" in kinds and "TL201" not in codes


@pytest.mark.parametrize("stepped, fires", [
    ([False] * 6 + [True] * 8, False),  # warm-up: the scale searching down from its initial value
    ([False] * 17, True),  # past where the scale would be below 1
    ([True] + [False, False, True] * 3, True),
    ([True] * 7 + [False], False),  # an occasional skip after the scale grew
])
def test_scaler_skipping(stepped, fires):
    assert bool(scaler_skipping(stepped)) is fires


def test_timeline_has_group_norms_and_updates(tmp_path):
    body = """\
        model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
        opt = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.0}], lr=0.1)
        for x, y in data:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        """
    codes, report = observed(tmp_path, body, steps=3)
    steps = [e for row in report["timeline"] for e in row["events"] if e["kind"] == "step"]
    assert len(steps) == 3
    for step in steps:
        first, second = step["group_grad_norms"]
        assert first > 0 and second > 0
        assert abs(step["grad_norm"] - (first ** 2 + second ** 2) ** 0.5) < 1e-4 * step["grad_norm"]
        assert step["update"] > 0 and step["lr"] == [0.1, 0.0]


def test_layers_run_hook_free_after_the_first_step(tmp_path):
    """Once the trained model is known, only it is hooked: its layers take PyTorch's fast path."""
    seen = tmp_path / "global_hooks.txt"
    body = f"""\
        from torch.nn.modules import module as torch_module
        model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        counts = []
        for x, y in data:
            counts.append(len(torch_module._global_forward_pre_hooks))
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            open({str(seen)!r}, "w").write(" ".join(map(str, counts)))
            opt.step()
        """
    codes, report = observed(tmp_path, body, steps=3)
    assert seen.read_text().split() == ["1", "0", "0"]
    assert report["micro_batches"] == 3 and report["steps"] == 3


# The tracer never changes the outcome of a run: models in every floating dtype, sparse and
# complex parameters, fused and foreach optimizers end exactly as they do untraced.
OUTCOME_CASES = {
    "float64 SGD": "model = nn.Linear(4, 1).double(); opt = torch.optim.SGD(model.parameters(), lr=0.1)",
    "float64 Adam foreach": "model = nn.Linear(4, 1).double(); opt = torch.optim.Adam(model.parameters(), foreach=True)",
    "float64 AdamW fused": "model = nn.Linear(4, 1).double(); opt = torch.optim.AdamW(model.parameters(), fused=True)",
    "bfloat16 SGD": "model = nn.Linear(4, 1).bfloat16(); opt = torch.optim.SGD(model.parameters(), lr=0.1)",
    "float16 SGD": "model = nn.Linear(4, 1).half(); opt = torch.optim.SGD(model.parameters(), lr=0.01)",
    "complex parameters": "model = nn.Linear(4, 1).to(torch.complex64); opt = torch.optim.Adam(model.parameters())",
}
OUTCOME_SCRIPT = """\
import json, sys
import torch
from torch import nn
torch.manual_seed(0)
{setup}
dtype = next(model.parameters()).dtype
for step in range(5):
    x = torch.randn(8, 4).to(dtype)
    opt.zero_grad()
    loss = model(x).abs().pow(2).mean().real.float()
    loss.backward()
    opt.step()
with open(sys.argv[1], "w") as handle:
    json.dump({{"loss": loss.item(), "weights": [p.detach().abs().sum().item() for p in model.parameters()]}}, handle)
"""
SPARSE_SCRIPT = """\
import json, sys
import torch
from torch import nn
torch.manual_seed(0)
bag = nn.EmbeddingBag(10, 4, mode="sum", sparse=True)
opt = torch.optim.SparseAdam(bag.parameters())
for step in range(5):
    opt.zero_grad()
    loss = bag(torch.randint(0, 10, (8, 3))).pow(2).mean()
    loss.backward()
    opt.step()
with open(sys.argv[1], "w") as handle:
    json.dump({"loss": loss.item(), "weights": bag.weight.detach().abs().sum().item()}, handle)
"""


def _outcome(tmp_path, source, traced):
    """What the script wrote at its end, run under the tracer (to completion) or plainly."""
    script = tmp_path / "train.py"
    result = tmp_path / ("traced.json" if traced else "plain.json")
    script.write_text(source)
    if traced:
        report = trace(str(script), [str(result)], steps=100)
        assert report["error"] is None, report["error"]
    else:
        subprocess.run([sys.executable, str(script), str(result)], check=True)
    return json.loads(result.read_text())


@pytest.mark.parametrize("name", sorted(OUTCOME_CASES))
def test_traced_run_ends_like_the_untraced_one(tmp_path, name):
    setup = OUTCOME_CASES[name]
    if "fused=True" in setup:
        try:
            torch.optim.AdamW([torch.zeros(1, dtype=torch.float64, requires_grad=True)], fused=True)
        except RuntimeError as error:
            pytest.skip(f"fused AdamW not available here: {error}")
    source = OUTCOME_SCRIPT.format(setup=setup)
    assert _outcome(tmp_path, source, traced=True) == _outcome(tmp_path, source, traced=False)


def test_sparse_gradients_trace_like_untraced(tmp_path):
    assert _outcome(tmp_path, SPARSE_SCRIPT, traced=True) == _outcome(tmp_path, SPARSE_SCRIPT, traced=False)
