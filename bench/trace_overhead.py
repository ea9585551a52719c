"""What `trainlint trace` adds to a real training step on a GPU, measured in one run.

    python bench/trace_overhead.py [--rounds 40] [--block 5] [--warm-up 20] [--json OUT]

For each model (a GPT-2-small-sized transformer in bf16 autocast, a ResNet-50-sized CNN), after
a warm-up of `--warm-up` seconds of training steps (so that the GPU's clocks have settled where
they stay), the same training step is timed: one phase before any tracing, then rounds of a block
with a fresh tracer's instrumentation installed followed by a block after it was removed (short
alternating blocks, so that clock and thermal drift hit both alike). Each step is timed with CUDA
events (the harness synchronises once per step, as a loop that logs `loss.item()` does; the
tracer itself does not). Reported: the median step time of each phase over all its steps, the
ratios traced/after (the cost while tracing) and after/before (what lingers once tracing
stopped), and the median over rounds of each traced block's median over the untraced block right
after it (paired: insensitive to drift between rounds). "hooks only" is the tracer without its
per-step norm passes, to tell the two costs apart; "tracer + line evidence" also counts every line of
the training step (trace.lines: sys.monitoring on Python 3.12+). `--control` runs the same schedule with nothing
installed: its ratios are the machine's noise.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from trainlint.trace.lines import LineCounter  # noqa: E402
from trainlint.trace.recorder import Recorder  # noqa: E402


def gpt2_small():
    layer = nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.1, batch_first=True, norm_first=True)
    model = nn.Sequential(nn.Embedding(50257, 768), nn.TransformerEncoder(layer, 12), nn.LayerNorm(768),
                          nn.Linear(768, 50257))

    def batch():
        tokens = torch.randint(0, 50257, (8, 512), device="cuda")
        return tokens, tokens

    def loss_fn(out, target):
        return nn.functional.cross_entropy(out.flatten(0, 1).float(), target.flatten())

    return model, batch, loss_fn, torch.bfloat16


def resnet50():
    import torchvision

    model = torchvision.models.resnet50()

    def batch():
        return torch.randn(64, 3, 224, 224, device="cuda"), torch.randint(0, 1000, (64,), device="cuda")

    return model, batch, nn.functional.cross_entropy, torch.bfloat16


def time_steps(step, count):
    times = []
    for _ in range(count):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def measure(name, build, rounds, block, warm_up_s, variants):
    model, batch, loss_fn, dtype = build()
    model = model.cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    data = [batch() for _ in range(4)]
    counter = iter(range(10 ** 9))

    def step():
        x, y = data[next(counter) % len(data)]
        with torch.autocast("cuda", dtype=dtype):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    WithLineEvidence.lines = {os.path.abspath(step.__code__.co_filename): {
        line: {"TL702"} for _, _, line in step.__code__.co_lines() if line and line > step.__code__.co_firstlineno}}
    started = time.monotonic()
    while time.monotonic() - started < warm_up_s:  # until the GPU's clocks settle where they will stay
        step()
        torch.cuda.synchronize()
    before = time_steps(step, rounds * block // 2)
    traced: dict = {variant: [] for variant in variants}
    paired: dict = {variant: [] for variant in variants}
    after = []
    for _ in range(rounds):  # short alternating blocks: clock and thermal drift hit every phase alike
        for variant, recorder_class in variants.items():
            recorder = recorder_class(max_steps=10 ** 9)
            recorder.install()
            try:
                with_tracer = time_steps(step, block)
            finally:
                recorder.uninstall()
            without = time_steps(step, block)
            traced[variant] += with_tracer
            after += without
            paired[variant].append(statistics.median(with_tracer) / statistics.median(without))
    # traced steps against the untraced steps interleaved with them; the block before any tracing
    # against those same steps shows whether anything lingers once the instrumentation is removed
    result = {"model": name, "params": sum(p.numel() for p in model.parameters()),
              "untraced_ms": statistics.median(before), "after_ms": statistics.median(after),
              "after_ratio": statistics.median(after) / statistics.median(before),
              "times": {"before": before, "after": after, **traced}}
    for variant, times in traced.items():
        result[variant] = {"traced_ms": statistics.median(times),
                           "traced_ratio": statistics.median(times) / statistics.median(after),
                           "paired_ratio": statistics.median(paired[variant])}
    return result


class WithoutStepNorms(Recorder):
    """The tracer without its per-step norm passes: what its hooks and wrappers alone cost."""

    norms = staticmethod(lambda tensors: None)


class NothingInstalled(Recorder):
    """For `--control`: the same schedule with nothing installed, so that every ratio shows the
    machine's own drift and noise."""

    def install(self):
        pass


class WithLineEvidence(Recorder):
    """The tracer with line evidence on, counting every line of the training step (as if each
    were a finding's line): sys.monitoring on Python 3.12+, the scoped call filter before."""

    lines: dict = {}  # set by measure(): the step function's file and lines

    def install(self):
        super().install()
        self.line_counter = LineCounter(self.lines, lambda: self.micro)
        self.line_counter.install()

    def uninstall(self):
        self.line_counter.uninstall()
        super().uninstall()


VARIANTS = {"tracer": Recorder, "hooks only": WithoutStepNorms, "tracer + line evidence": WithLineEvidence}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--warm-up", type=float, default=20.0, help="seconds of training steps before timing")
    parser.add_argument("--control", action="store_true", help="install nothing: the ratios show the noise")
    parser.add_argument("--json")
    args = parser.parse_args()
    variants = {name: NothingInstalled for name in VARIANTS} if args.control else VARIANTS
    timing = (args.rounds, args.block, args.warm_up, variants)
    results = [measure("GPT-2-small-sized transformer (bf16, batch 8x512)", gpt2_small, *timing),
               measure("ResNet-50 (bf16, batch 64x224x224)", resnet50, *timing)]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}: {args.rounds} rounds of {args.block} traced "
          f"then {args.block} untraced steps, after {args.rounds * args.block // 2} steps before any tracing; "
          "median step times"
          + (" (CONTROL: nothing installed)" if args.control else ""))
    print("| model | params | before ms | traced ms | after ms | traced ÷ after | (paired) | after ÷ before "
          "| hooks only ÷ after | (paired) | with line evidence ÷ after | (paired) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        tracer, hooks, lines = r["tracer"], r["hooks only"], r["tracer + line evidence"]
        print(f"| {r['model']} | {r['params'] / 1e6:.0f}M | {r['untraced_ms']:.2f} | {tracer['traced_ms']:.2f} | "
              f"{r['after_ms']:.2f} | {tracer['traced_ratio']:.3f} | {tracer['paired_ratio']:.3f} | "
              f"{r['after_ratio']:.3f} | {hooks['traced_ratio']:.3f} | {hooks['paired_ratio']:.3f} | "
              f"{lines['traced_ratio']:.3f} | {lines['paired_ratio']:.3f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
