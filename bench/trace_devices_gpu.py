"""On a CUDA machine: the tracer never changes how a run ends, for parameters in every floating
dtype, fused and foreach optimizers, a GradScaler, sparse gradients, and a model whose parameters
sit on two devices (CUDA and CPU). Each case runs untraced twice (is it deterministic at all?) and
once under `trainlint trace`, each to its end; the table says whether the traced run wrote
exactly what the untraced one did. (The CPU cases of this matrix are tests in tests/.)

    python bench/trace_devices_gpu.py
"""
import json
import os
import subprocess
import sys
import tempfile

SCRIPT = """\
import json, sys
import torch
from torch import nn
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
{setup}
for step in range(20):
    opt.zero_grad()
    loss = run()
    {backward}
with open(sys.argv[1], "w") as handle:
    json.dump({{"loss": loss.item(), "weights": [p.detach().double().sum().item() for p in params]}}, handle)
"""
PLAIN = ("loss.backward()\n    opt.step()")
SCALED = ("scaler.scale(loss).backward()\n    scaler.step(opt)\n    scaler.update()")
LINEAR = """
model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 1)).to("cuda", {dtype})
params = list(model.parameters())
opt = {optimizer}
def run():
    x = torch.randn(32, 64, device="cuda", dtype={dtype})
    return model(x).float().pow(2).mean()
"""
CASES = {
    "float32, Adam fused": (LINEAR.format(dtype="torch.float32", optimizer="torch.optim.Adam(params, fused=True)"),
                            PLAIN),
    "bfloat16, AdamW foreach": (LINEAR.format(dtype="torch.bfloat16",
                                              optimizer="torch.optim.AdamW(params, foreach=True)"), PLAIN),
    "float16, SGD": (LINEAR.format(dtype="torch.float16", optimizer="torch.optim.SGD(params, lr=1e-3)"), PLAIN),
    "float64, SGD momentum": (LINEAR.format(dtype="torch.float64",
                                            optimizer="torch.optim.SGD(params, lr=0.01, momentum=0.9)"), PLAIN),
    "fp16 autocast + GradScaler, AdamW fused": ("""
model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 1)).cuda()
params = list(model.parameters())
opt = torch.optim.AdamW(params, fused=True)
scaler = torch.amp.GradScaler("cuda")
def run():
    with torch.autocast("cuda", dtype=torch.float16):
        return model(torch.randn(32, 64, device="cuda")).float().pow(2).mean()
""", SCALED),
    "parameters on CUDA and CPU, Adam foreach": ("""
first, second = nn.Linear(64, 256), nn.Linear(256, 1).cuda()
params = list(first.parameters()) + list(second.parameters())
opt = torch.optim.Adam(params, foreach=True)
def run():
    return second(torch.relu(first(torch.randn(32, 64))).cuda()).pow(2).mean()
""", PLAIN),
    "sparse embedding, SparseAdam": ("""
bag = nn.EmbeddingBag(1000, 64, mode="sum", sparse=True).cuda()
params = list(bag.parameters())
opt = torch.optim.SparseAdam(params)
def run():
    return bag(torch.randint(0, 1000, (32, 8), device="cuda")).pow(2).mean()
""", PLAIN),
}


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    print("| case | untraced twice identical | traced identical to untraced | steps traced | trace exit | findings |")
    print("|---|---|---|---:|---:|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, (setup, backward) in CASES.items():
            script = os.path.join(folder, "train.py")
            with open(script, "w") as handle:
                handle.write(SCRIPT.format(setup=setup, backward=backward))
            outputs = []
            for run in ("plain1", "plain2"):
                out = os.path.join(folder, f"{run}.json")
                subprocess.run([sys.executable, script, out], check=True, capture_output=True,
                               env=dict(os.environ, CUBLAS_WORKSPACE_CONFIG=":4096:8"))
                outputs.append(json.load(open(out)))
            out = os.path.join(folder, "traced.json")
            traced = subprocess.run([sys.executable, "-m", "trainlint", "trace", script, "--steps", "1000",
                                     "--format", "json", "--", out], capture_output=True, text=True, cwd=root,
                                    env=dict(os.environ, CUBLAS_WORKSPACE_CONFIG=":4096:8"))
            try:
                report = json.loads(traced.stdout)
                outputs.append(json.load(open(out)))
            except (ValueError, OSError):
                print(f"| {name} | {outputs[0] == outputs[1]} | FAILED: {traced.stderr[-300:]!r} | | {traced.returncode} | |")
                continue
            findings = sorted({f"{f['code']} ({f['severity']})" for f in report["findings"]
                               if f["verdict"] in (None, "confirmed", "runtime-only")})
            print(f"| {name} | {outputs[0] == outputs[1]} | {outputs[0] == outputs[2]} | {report['steps']} | "
                  f"{traced.returncode} | {', '.join(findings) or 'none'} |")


if __name__ == "__main__":
    main()
