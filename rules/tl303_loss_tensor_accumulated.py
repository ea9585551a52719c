import ast

from trainlint.rule import Fix, Report, Rule
from trainlint.semantics import Kind
from trainlint.semantics.queries import bound_outside, functions, reset_inside
from trainlint.semantics.syntax import dotted


class LossTensorAccumulated(Rule):
    """
    What it does: finds a loss tensor (one that `backward()` is called on) added into a running
    total or appended to a list that lives across iterations, without `.item()` or `.detach()`.

    Why it is bad: the total keeps a reference to every iteration's loss, and through it to every
    iteration's whole autograd graph (activations included). Memory grows step after step until the
    run dies with an out-of-memory error hours in, or the batch size gets lowered to "fix" it.

    Not flagged: `total += loss.item()` / `loss.detach()`, sums that are themselves backpropagated
    (`total = total + loss_i; total.backward()`), and accumulators created or reset inside the loop
    (`running_loss = 0` after each optimizer step keeps only one window alive).

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
                if not any(b.target == value and b.in_loop(loop) for b in backwards):
                    continue
                if not bound_outside(fn, added.target, loop) or reset_inside(fn, added.target, loop):
                    continue  # made, or emptied, in the loop: the graphs it holds are bounded
                what = "appended to" if isinstance(added.node, ast.Call) else "added into"
                yield Report(added.node, f"the loss tensor '{value}' is {what} '{added.target}', which outlives the "
                                         f"iteration: every step's autograd graph stays in memory; use "
                                         f"{value}.detach() (or .item())",
                             fix=Fix(f"detach '{value}'", added.detail["value"], f"{value}.detach()"))
