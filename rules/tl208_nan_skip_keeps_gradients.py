from trainlint.rule import Report, Rule
from trainlint.semantics import GuardKind, Kind, functions
from trainlint.semantics.boundaries import may_clear_gradients_of
from trainlint.semantics.prerequisites import BACKWARD, NAN_CHECK, OPTIMIZER_STEP


class NanSkipKeepsGradients(Rule):
    """
    What it does: finds a check that skips `optimizer.step()` when the loss (or a gradient) is not
    finite, placed after `backward()`, on whose skipping path no `zero_grad()` runs.

    Why it is bad: `backward()` has already added NaN/Inf into `.grad`. Skipping the step without
    clearing leaves them there, and the next `backward()` adds the next batch's gradient on top:
    the next step applies NaN, and from then on every weight is NaN. The skip logic that was meant
    to protect the run destroys it one step later.

    Not flagged: the check placed before `backward()`, a skipping branch that calls `zero_grad()`
    (or sets gradients to None), and a `zero_grad()` that runs on every path (at the top of the
    loop or after the check).

    Fix: clear the gradients in the skipping branch: `optimizer.zero_grad(); continue`.
    """

    code = "TL208"
    name = "nan-skip-keeps-gradients"
    severity = "error"
    summary = "a non-finite check skips step() after backward() but keeps the bad gradients"
    requires = (NAN_CHECK, BACKWARD, OPTIMIZER_STEP)

    INVALID = [
        """
        for batch in loader:
            loss = compute_loss(model, batch)
            loss.backward()
            if not torch.isfinite(loss):  # <-
                print("non-finite loss, skipping")
                continue
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            if torch.isfinite(loss).all():  # <-
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
        """,
    ]
    VALID = [
        """
        for batch in loader:
            loss = compute_loss(model, batch)
            loss.backward()
            if not torch.isfinite(loss):
                print("non-finite loss, skipping")
                optimizer.zero_grad()
                continue
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        for batch in loader:
            loss = compute_loss(model, batch)
            if torch.isnan(loss):
                continue
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        for batch in loader:
            optimizer.zero_grad()
            loss = compute_loss(model, batch)
            loss.backward()
            if not math.isfinite(loss.item()):
                continue
            optimizer.step()
        """,
        """
        for batch in loader:
            loss = compute_loss(model, batch)
            loss.backward()
            if torch.isfinite(loss):
                optimizer.step()
            optimizer.zero_grad()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            reported = set()
            for step in fn.events_of(Kind.OPT_STEP):
                loop = step.innermost_loop
                if not fn.owns(loop):
                    continue
                for guard in step.guards_within(loop):
                    if guard.kind != GuardKind.NAN or guard.holds or id(guard.node) in reported:
                        continue  # the step must be the finite-only path of a NaN check
                    before = [b for b in fn.events_in(loop, Kind.BACKWARD) if b.order < step.order and not b.has_guard(guard)]
                    if not before:
                        continue
                    if any(may_clear_gradients_of(fn, z, step) and not _only_when_finite(z, guard)
                           for z in fn.events_in(loop, Kind.ZERO_GRAD)):
                        continue
                    reported.add(id(guard.node))
                    yield Report(guard.test, f"when this check finds a non-finite value it skips optimizer.step() at "
                                             f"line {step.line} but keeps the gradients of backward() at line "
                                             f"{before[-1].line}: they are added into the next step; clear them "
                                             f"(zero_grad()) on the skipping path")


def _only_when_finite(event, guard):
    return any(g.node is guard.node and g.positive == guard.positive for g in event.guards())
