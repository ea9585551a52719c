"""What a running total of loss tensors keeps alive (the fact behind TL303's severity).

A two-layer network runs ten iterations; weak references watch each iteration's activations. A
total formed before or after the same loss's backward() keeps none of them (backward() frees the
saved tensors of the graph it runs through); with no backward(), it keeps all of them.

    python bench/loss_total_memory.py        # CPU, a few seconds
"""
import gc
import weakref

import torch


def activations_alive(when: str, iterations: int = 10) -> int:
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(200, 200))
    optimizer = torch.optim.SGD([weight], lr=1e-6)
    total, watched = 0, []
    for _ in range(iterations):
        hidden = torch.tanh(torch.randn(200, 200) @ weight)
        output = torch.tanh(hidden @ weight)
        watched += [weakref.ref(hidden), weakref.ref(output)]
        loss = output.pow(2).mean()
        if when == "before backward()":
            total += loss
        if when != "no backward()":
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if when in ("after backward()", "no backward()"):
            total += loss
    del hidden, output, loss
    gc.collect()
    return sum(ref() is not None for ref in watched)


if __name__ == "__main__":
    for when in ("before backward()", "after backward()", "no backward()"):
        print(f"total += loss {when:<18} activations still alive: {activations_alive(when)} of 20")
