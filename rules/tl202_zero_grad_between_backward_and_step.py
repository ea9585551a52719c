from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, exclusive, functions
from trainlint.semantics.boundaries import clears_gradients_of, found_in_one_helper
from trainlint.semantics.prerequisites import BACKWARD, GRADIENTS_CLEARED, OPTIMIZER_STEP


class ZeroGradBetweenBackwardAndStep(Rule):
    """
    What it does: finds a `zero_grad()` that runs after the last `backward()` and before
    `optimizer.step()` in the same iteration (or the same function, for a step helper).

    Why it is bad: the gradients that `backward()` just computed are cleared before the optimizer
    reads them, so `step()` applies zero gradients (plain SGD does nothing; Adam keeps moving on
    stale momentum). The loss prints and never improves.

    Not flagged: `zero_grad()` before `backward()`, after `step()`, on another optimizer (GAN
    generator vs discriminator), in a branch that skips the step (`continue`) or in an `except`
    handler (recovering from an out-of-memory micro-batch); one tensor's
    gradient cleared by hand (`mask.grad.zero_()`) to keep that tensor fixed, unless the
    optimizer is known to update that very tensor.

    Fix: move `zero_grad()` before `backward()` or after `step()`.
    """

    code = "TL202"
    name = "zero-grad-between-backward-and-step"
    severity = "error"
    summary = "zero_grad() between backward() and step(): the step applies zero gradients"
    requires = (GRADIENTS_CLEARED, OPTIMIZER_STEP, BACKWARD)

    INVALID = [
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.zero_grad()  # <-
            optimizer.step()
        """,
        """
        def train_step(self, batch):
            loss = self.model(batch)
            self.scaler.scale(loss).backward()
            self.model.zero_grad()  # <-
            self.scaler.step(self.optimizer)
            self.scaler.update()
        """,
        """
        for step in range(steps):
            for micro in range(accum):
                loss = model(next(it)) / accum
                loss.backward()
            optimizer.zero_grad()  # <-
            optimizer.step()
        """,
    ]
    VALID = [
        """
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        """,
        """
        opt_d = torch.optim.Adam(net_d.parameters())
        opt_g = torch.optim.Adam(net_g.parameters())
        for real in loader:
            loss_d = d_loss(net_d, net_g, real)
            loss_d.backward()
            net_g.zero_grad()
            opt_d.step()
        """,
        """
        for batch in loader:
            loss = model(batch)
            loss.backward()
            if not torch.isfinite(loss):
                optimizer.zero_grad()
                continue
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        for batch in loader:
            loss_d = critic_loss(batch)
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = gen_loss(batch)
            loss_g.backward()
            opt_g.step()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for step in fn.events_of(Kind.OPT_STEP):
                loop = step.innermost_loop
                if loop is not None and not fn.owns(loop):
                    continue
                same_iteration = fn.events_in(loop, Kind.BACKWARD)
                for zero in fn.events_in(loop, Kind.ZERO_GRAD):
                    if zero.order >= step.order:
                        continue
                    if exclusive(zero, step) or not clears_gradients_of(fn, zero, step) or zero.recovers_from_an_error:
                        continue
                    before = [b for b in same_iteration if b.order < zero.order and not exclusive(b, zero)]
                    between = [b for b in same_iteration if zero.order < b.order < step.order]
                    if not before or between or found_in_one_helper(zero, step, before[-1]):
                        continue  # the helper, analysed on its own, reports it at its own line
                    if loop is not None or not (zero.via and step.via):
                        yield Report(
                            zero.node,
                            f"zero_grad() here clears the gradients of backward() at line {before[-1].line} "
                            f"before optimizer.step() at line {step.line} applies them",
                        )
