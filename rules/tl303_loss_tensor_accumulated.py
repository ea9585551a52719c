import ast

from trainlint.rule import Fix, Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.dataflow import bound_outside, reset_inside
from trainlint.semantics.values import consumed_inside, is_local, returned
from trainlint.semantics.syntax import dotted


class LossTensorAccumulated(Rule):
    """
    What it does: finds a loss tensor (one that `backward()` is called on) added into a running
    total or appended to a list that lives across iterations, without `.item()` or `.detach()`.

    Why it is bad: the total keeps a reference to every iteration's loss, and through it to every
    iteration's whole autograd graph (activations included). Memory grows step after step until the
    run dies with an out-of-memory error hours in, or the batch size gets lowered to "fix" it.

    Severity: error when the loss is kept before its `backward()` (the activations stay alive);
    warning when it is appended after `backward()` freed them (only the graph's nodes leak).

    Not flagged: `total += loss.item()` / `loss.detach()`, sums that are themselves backpropagated
    (`total = total + loss_i; total.backward()`), accumulators created, reset or drained
    (`queue.pop(0)`) inside the loop (`running_loss = 0` after each optimizer step keeps only one
    window alive), and lists local to a function that returns them (chunked losses summed by the
    caller) or that are filled after `backward()`.

    Fix: `total += loss.detach()` (or `loss.item()` when a Python float is wanted; `.item()` waits
    for the GPU every step).
    """

    code = "TL303"
    name = "loss-tensor-accumulated"
    severity = "warning"
    summary = "loss tensor summed/appended across iterations without .item()/.detach(): graphs leak"
    triggers = ("backward",)

    INVALID = [
        """
        total_loss = 0
        for x, y in loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss  # <-
        """,
        """
        history = []
        for epoch in range(epochs):
            for batch in loader:
                loss = model(batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                history.append(loss)  # <-
        """,
    ]
    VALID = [
        """
        total_loss = 0.0
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        """,
        """
        for x, y in loader:
            loss = 0
            for head in heads:
                loss += criterion(head(x), y)
            loss.backward()
        """,
        """
        history = []
        for batch in loader:
            loss = model(batch).loss
            loss.backward()
            history.append(loss.detach())
        """,
        """
        for batch in loader:
            parts = []
            loss = model(batch).loss
            parts.append(loss)
            loss.backward()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            backwards = fn.events_of(Kind.BACKWARD)
            backwarded = {b.target for b in backwards}
            for added in fn.events_of(Kind.ACCUMULATE):
                value = dotted(added.detail["value"])
                loop = added.innermost_loop
                if value is None or value not in backwarded or added.target in backwarded or not fn.owns(loop):
                    continue
                own = [b for b in backwards if b.target == value and b.in_loop(loop)]
                if not own:
                    continue
                if not bound_outside(fn, added.target, loop) or reset_inside(fn, added.target, loop) \
                        or consumed_inside(added.target, loop):
                    continue  # made, emptied or drained in the loop: the graphs it holds are bounded
                after_backward = all(b.order < added.order for b in own)
                if is_local(fn, added.target) and (after_backward or returned(fn, added.target)):
                    continue  # lives for one call: freed graphs, or parts meant to be used together
                what = "appended to" if isinstance(added.node, ast.Call) else "added into"
                kept = ("its graph nodes (backward() already freed the activations)" if after_backward
                        else "every step's autograd graph, activations included,")
                yield Report(added.node, f"the loss tensor '{value}' is {what} '{added.written}', which outlives the "
                                         f"iteration: {kept} stay in memory; use {value}.detach() (or .item())",
                             severity="warning" if after_backward else "error",
                             fix=Fix(f"detach '{value}'", added.detail["value"], f"{value}.detach()"))
