from trainlint.rule import Report, Rule
from trainlint.semantics import GuardKind, Kind, functions
from trainlint.semantics.boundaries import (
    backward_events_in, boundary_guards, describe, divided_by_accumulation, loop_targets, may_clear_gradients_of,
    modulus_counter,
)
from trainlint.semantics.prerequisites import GRADIENTS_CLEARED, OPTIMIZER_STEP


class PartialAccumulationWindowLeaks(Rule):
    """
    What it does: finds gradient accumulation that divides the loss by k and steps only when
    `(i + 1) % k == 0`, where `i` restarts every epoch, with no step for the last
    `len(loader) % k` micro-batches and gradients cleared only after a step.

    Why it is bad: when the number of batches is not a multiple of k, the last micro-batches of an
    epoch are backpropagated but never applied; their gradients stay in `.grad` and are added to
    the first window of the next epoch, which then sums more than k micro-batches. Small, but it
    silently changes the effective batch and the loss scale at every epoch boundary.

    Not flagged: boundaries that also fire on the last batch (`or (i + 1) == len(loader)`), a
    `zero_grad()` at the start of each epoch or window, counters that do not restart per epoch,
    and losses normalised by something other than k (token counts carried along with the
    gradients keep a longer window consistent).

    Fix: also step on the last batch: `if (i + 1) % k == 0 or (i + 1) == len(loader):`.
    """

    code = "TL207"
    name = "partial-accumulation-window-leaks"
    severity = "info"
    summary = "leftover micro-batches of an epoch leak their gradients into the next epoch"
    requires = (GRADIENTS_CLEARED, OPTIMIZER_STEP)

    INVALID = [
        """
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / accum
                loss.backward()
                if (i + 1) % accum == 0:  # <-
                    optimizer.step()
                    optimizer.zero_grad()
        """,
    ]
    VALID = [
        """
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / accum
                loss.backward()
                if (i + 1) % accum == 0 or (i + 1) == len(loader):
                    optimizer.step()
                    optimizer.zero_grad()
        """,
        """
        for epoch in range(epochs):
            optimizer.zero_grad()
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / accum
                loss.backward()
                if (i + 1) % accum == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """,
        """
        global_step = 0
        for epoch in range(epochs):
            for x, y in loader:
                loss = criterion(model(x), y) / accum
                loss.backward()
                global_step += 1
                if global_step % accum == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for step in fn.events_of(Kind.OPT_STEP):
                loop = step.innermost_loop
                if not fn.owns(loop) or loop.parent is None:
                    continue  # no epoch loop around: nothing to leak into
                boundary = boundary_guards(step, loop)
                if len(boundary) != 1 or boundary[0].kind != GuardKind.BOUNDARY:
                    continue
                guard = boundary[0]
                if modulus_counter(guard) not in loop_targets(loop):
                    continue  # a counter that keeps running across epochs: windows straddle them
                accumulated = [b for b in backward_events_in(fn, loop) if not b.has_guard(guard)]
                if not any(divided_by_accumulation(fn, b) for b in accumulated):
                    continue  # normalised otherwise (by token count...): a longer window stays consistent
                clearing = [z for z in fn.events_in(loop.parent, Kind.ZERO_GRAD) if may_clear_gradients_of(fn, z, step)]
                if clearing and all(z.has_guard(guard) and z.order > step.order for z in clearing):
                    yield Report(guard.test, f"optimizer.step() at line {step.line} runs only when "
                                             f"{describe(guard)}; the last len(loader) % k micro-batches of "
                                             f"an epoch are never stepped and their gradients leak into the next "
                                             f"epoch's first step")

