"""What `trainlint trace` adds to a real training step on a GPU, measured in one run.

    python bench/trace_overhead.py [--rounds 24] [--block 5] [--json OUT]

For each model (a GPT-2-small-sized transformer in bf16 autocast, a ResNet-50-sized CNN), the
same training step is timed: one block before any tracing, then rounds of a block with a fresh
tracer's instrumentation installed followed by a block after it was removed (short alternating
blocks, so that clock and thermal drift hit both alike). Each step is timed with CUDA events (the
harness synchronises once per step, as a loop that logs `loss.item()` does; the tracer itself
does not). Reported: the median step time of each phase over all its steps, the ratios
traced/after (the cost while tracing) and after/before (what lingers once tracing stopped), and
the median over rounds of each traced block's median over the untraced block right after it
(paired: insensitive to drift between rounds). "hooks only" is the tracer without its per-step
norm passes, to tell the two costs apart.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
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


def measure(name, build, rounds, block):
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

    for _ in range(10):  # warm-up
        step()
    torch.cuda.synchronize()
    before = time_steps(step, rounds * block // 2)
    traced: dict = {variant: [] for variant in VARIANTS}
    paired: dict = {variant: [] for variant in VARIANTS}
    after = []
    for _ in range(rounds):  # short alternating blocks: clock and thermal drift hit every phase alike
        for variant, recorder_class in VARIANTS.items():
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


VARIANTS = {"tracer": Recorder, "hooks only": WithoutStepNorms}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    results = [measure("GPT-2-small-sized transformer (bf16, batch 8x512)", gpt2_small, args.rounds, args.block),
               measure("ResNet-50 (bf16, batch 64x224x224)", resnet50, args.rounds, args.block)]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}: {args.rounds} rounds of {args.block} traced "
          f"then {args.block} untraced steps, after {args.rounds * args.block // 2} steps before any tracing; median step times")
    print("| model | params | before ms | traced ms | after ms | traced ÷ after | (paired) | after ÷ before "
          "| hooks only ÷ after | (paired) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        tracer, hooks = r["tracer"], r["hooks only"]
        print(f"| {r['model']} | {r['params'] / 1e6:.0f}M | {r['untraced_ms']:.2f} | {tracer['traced_ms']:.2f} | "
              f"{r['after_ms']:.2f} | {tracer['traced_ratio']:.3f} | {tracer['paired_ratio']:.3f} | "
              f"{r['after_ratio']:.3f} | {hooks['traced_ratio']:.3f} | {hooks['paired_ratio']:.3f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
