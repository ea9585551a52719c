import ast

from trainlint.rule import Fix, Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.dataflow import (
    backpropagated, bound_outside, computed_without_grad, frees_activations, holds_loss, reset_inside, runs_with_grad,
)
from trainlint.semantics.modes import steps_in_sight
from trainlint.semantics.values import consumed_inside, is_local, keeps_what_is_appended, returned
from trainlint.semantics.syntax import dotted
from trainlint.semantics.prerequisites import ACCUMULATED_NAME, LOSS_OR_BACKWARD


class LossTensorAccumulated(Rule):
    """
    What it does: finds a loss tensor (one that `backward()` is called on, or a criterion's result
    in a loop with no `backward()` that runs with gradients enabled) added into a running total
    or appended to a list that lives across iterations, without `.item()` or `.detach()`.

    Why it is bad: the total keeps a reference to every iteration's loss, and through it to every
    iteration's whole autograd graph (activations included). Memory grows step after step until the
    run dies with an out-of-memory error hours in, or the batch size gets lowered to "fix" it.

    Severity: error when the loss is kept before its `backward()`, or in a loop with no
    `backward()` that records gradients (validation without `no_grad`): the activations stay
    alive; warning when it is appended after `backward()` freed them (only the graph's nodes leak).

    Not flagged: `total += loss.item()` / `loss.detach()`, criteria collected in a list
    (`losses.append(LpLoss(d=2))`: objects, not loss tensors), sums that are themselves backpropagated
    (`total = total + loss_i; total.backward()`, also through a name: `meta_loss = total / n;
    meta_loss.backward()`), accumulators created, reset or drained
    (`queue.pop(0)`) inside the loop (`running_loss = 0` after each optimizer step keeps only one
    window alive), and lists local to a function that returns them (chunked losses summed by the
    caller) or that are filled after `backward()`; `append` of an object some other class built
    (`meter = CumulativeAverage(); meter.append(loss)`: its own method may keep a detached number); loops with no `backward()` under `no_grad` /
    `inference_mode` (a block, a decorator, every caller in the file), or in a function no code of
    the file calls (its callers elsewhere may disable gradients).

    Fix: `total += loss.detach()` (or `loss.item()` when a Python float is wanted; `.item()` waits
    for the GPU every step).
    """

    code = "TL303"
    name = "loss-tensor-accumulated"
    severity = "warning"
    summary = "loss tensor summed/appended across iterations without .item()/.detach(): graphs leak"
    requires = (ACCUMULATED_NAME, LOSS_OR_BACKWARD)

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
        """
        losses = []
        for x, y in loader:
            loss = criterion(model(x), y)
            losses.append(loss)  # <-
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        def validate(model, loader):
            model.eval()
            total = 0
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                total += loss  # <-
            return total.item() / len(loader)

        def main():
            for epoch in range(epochs):
                train_one_epoch(model, train_loader, optimizer)
                print(validate(model, val_loader))

        if __name__ == "__main__":
            main()
        """,
    ]
    VALID = [
        """
        def validate(model, loader):
            total = 0
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                total += loss
            return total.item() / len(loader)

        for epoch in range(epochs):
            train_one_epoch(model, train_loader, optimizer)
            with torch.no_grad():
                print(validate(model, val_loader))
        """,
        """
        @torch.no_grad()
        def evaluate(model, loader, criterion):
            losses = []
            for x, y in loader:
                losses.append(criterion(model(x), y))
                loss = criterion(model(x), y)
                losses.append(loss)
            return torch.stack(losses).mean()
        """,
        """
        def evaluate(model, loader):
            total = 0
            for batch in loader:
                loss = model(**batch).loss
                total += loss
            return total / len(loader)
        """,
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
            summed_into_a_loss = backpropagated(fn)
            for added in fn.events_of(Kind.ACCUMULATE):
                value = dotted(added.detail["value"])
                loop = added.innermost_loop
                if value is None or added.target in summed_into_a_loss or not fn.owns(loop) \
                        or isinstance(added.node, ast.Call) and not keeps_what_is_appended(fn, added.target):
                    continue
                if not bound_outside(fn, added.target, loop) or reset_inside(fn, added.target, loop) \
                        or consumed_inside(added.target, loop):
                    continue  # made, emptied or drained in the loop: the graphs it holds are bounded
                own = [b for b in backwards if b.target == value and b.in_loop(loop)]
                if own and not steps_in_sight(fn):
                    continue  # a derivative taken to be read (a plot, a saliency map), not a training loss
                if own:
                    after_backward = all(b.order < added.order for b in own)
                    freed = after_backward or any(frees_activations(b, added) for b in own)
                    if is_local(fn, added.target) and (freed or returned(fn, added.target)):
                        continue  # lives for one call: freed graphs, or parts meant to be used together
                    kept = ("every step's autograd graph, activations included," if not freed else
                            f"its graph nodes (backward() {'already freed' if after_backward else 'frees'} "
                            f"the activations)")
                    yield _report(added, value, kept, "warning" if freed else "error")
                elif value not in backwarded and not fn.events_in(loop, Kind.BACKWARD) \
                        and holds_loss(fn, value, added.line) and runs_with_grad(fn, added) \
                        and computed_without_grad(fn, added.detail["value"], added.line) is None \
                        and not (is_local(fn, added.target) and returned(fn, added.target)):
                    yield _report(added, value, "with no backward() and gradients enabled, every iteration's "
                                                "autograd graph, activations included, will", "error")


def _report(added, value: str, kept: str, severity: str) -> Report:
    what = "appended to" if isinstance(added.node, ast.Call) else "added into"
    return Report(added.node, f"the loss tensor '{value}' is {what} '{added.written}', which outlives the "
                              f"iteration: {kept} stay in memory; use {value}.detach() (or .item())",
                  severity=severity, fix=Fix(f"detach '{value}'", added.detail["value"], f"{value}.detach()"))
