"""Where the tracer's cost goes on a GPU step: the kernels it adds and the host time of its hooks.

    python bench/trace_profile_gpu.py [--steps 10]

Runs the GPT-2-small-sized step of trace_overhead.py untraced and traced (a fresh Recorder after
its first step, the steady state of a trace) under torch.profiler, and prints per step: the GPU
kernel time, the kernels only the traced steps ran (name, count, GPU ms), the wall time, and the
host time spent in the tracer's own functions (trainlint/trace/*.py).
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trace_overhead import gpt2_small  # noqa: E402
from trainlint.trace.recorder import Recorder  # noqa: E402


def kernels(prof):
    found = collections.defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            entry = found[event.name[:90]]
            entry[0] += 1
            entry[1] += event.device_time_total / 1000.0 if hasattr(event, "device_time_total") else \
                event.cuda_time_total / 1000.0
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    model, batch, loss_fn, dtype = gpt2_small()
    model = model.cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    data = [batch() for _ in range(4)]

    def step(i):
        x, y = data[i % len(data)]
        with torch.autocast("cuda", dtype=dtype):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for i in range(30):
        step(i)
    torch.cuda.synchronize()
    results = {}
    for name in ("untraced", "traced"):
        recorder = Recorder(max_steps=10 ** 9) if name == "traced" else None
        if recorder is not None:
            recorder.install()
            step(0)  # the first traced step hooks every layer until the roots are known
            torch.cuda.synchronize()
        host = cProfile.Profile() if recorder is not None else None
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            if host:
                host.enable()
            for i in range(args.steps):
                step(i)
            if host:
                host.disable()
            torch.cuda.synchronize()
        wall = (time.perf_counter() - start) * 1000 / args.steps
        if recorder is not None:
            recorder.uninstall()
        results[name] = (kernels(prof), wall, host)
    base, traced = results["untraced"][0], results["traced"][0]
    total = {name: sum(ms for _, ms in k.values()) / args.steps for name, (k, _, _) in results.items()}
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.steps} steps each")
    for name, (_, wall, _) in results.items():
        print(f"{name}: wall {wall:.2f} ms/step (profiled), GPU kernel time {total[name]:.2f} ms/step")
    print("kernels the traced steps ran more of (name, extra launches per step, extra GPU ms per step):")
    extra = []
    for kernel, (count, ms) in traced.items():
        b_count, b_ms = base.get(kernel, (0, 0.0))
        if count > b_count or ms - b_ms > 0.02 * args.steps:
            extra.append(((ms - b_ms) / args.steps, (count - b_count) / args.steps, kernel))
    for ms, count, kernel in sorted(extra, reverse=True)[:15]:
        print(f"  {ms:7.3f} ms  {count:6.1f}x  {kernel}")
    stats = pstats.Stats(results["traced"][2])
    own = [(value[2], key) for key, value in stats.stats.items() if "trainlint" in key[0]]
    print("host time in trainlint's functions (self time, ms per step):",
          f"{sum(t for t, _ in own) * 1000 / args.steps:.3f}")
    for seconds, key in sorted(own, reverse=True)[:12]:
        print(f"  {seconds * 1000 / args.steps:7.3f} ms  {os.path.basename(key[0])}:{key[1]} {key[2]}")


if __name__ == "__main__":
    main()
