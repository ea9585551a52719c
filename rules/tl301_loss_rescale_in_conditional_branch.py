import ast

from trainlint.rule import Report, Restructure, Rule
from trainlint.semantics import GuardKind, Kind, functions
from trainlint.semantics.boundaries import describe, is_accumulation_count, loop_targets
from trainlint.semantics.syntax import names_in
from trainlint.semantics.prerequisites import BACKWARD_WRITTEN


class LossRescaleInConditionalBranch(Rule):
    """
    What it does: finds a loss rescaled (`loss = loss / k`, `loss *= w`) inside an `if` that is
    true on some iterations only (a debug, logging or first-iteration test; or, when the factor is
    the accumulation count, any test of the loop's counter), while `backward()` of that loss runs
    outside it. Tests whose variation trainlint cannot establish are left alone.

    Why it is bad: the scale applies to some iterations only. A real report had
    `loss = loss / grad_accumulation` inside `if epoch == 1 and bi == 0:` (a debug block): only the
    first batch was scaled, every other step used a k-times larger gradient.

    Not flagged: loop-invariant configuration tests (`if accum > 1: loss = loss / accum`), the
    accumulation boundary or last partial window, and rescaling whose backward is inside the same
    branch.

    Fix: move the rescale out of the branch so that it applies on every iteration
    (`--fix --unsafe-fixes` moves it to just after the `if`; a branch left empty goes).
    """

    code = "TL301"
    name = "loss-rescale-in-conditional-branch"
    severity = "error"
    summary = "loss rescaled only on some iterations (inside a debug/varying branch)"
    requires = (BACKWARD_WRITTEN,)

    INVALID = [
        """
        for epoch in range(1, epochs + 1):
            for bi, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                if epoch == 1 and bi == 0:
                    print("first batch", loss.item())
                    loss = loss / grad_accumulation  # <-
                loss.backward()
                if (bi + 1) % grad_accumulation == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """,
        """
        for step, batch in enumerate(loader):
            loss = model(batch)
            if step % args.log_interval == 0:
                logger.info(loss.item())
                loss /= args.accum_steps  # <-
            loss.backward()
        """,
        """
        for step, batch in enumerate(loader):
            loss = model(batch)
            if batch["valid"].any():
                loss = loss / gradient_accumulation_steps  # <-
            accelerator.backward(loss)
        """,
    ]
    VALID = [
        """
        for epoch in range(1, epochs + 1):
            for bi, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                loss = loss / grad_accumulation
                if epoch == 1 and bi == 0:
                    print("first batch", loss.item())
                loss.backward()
        """,
        """
        for step, batch in enumerate(loader):
            loss = model(batch)
            if args.gradient_accumulation_steps > 1:
                loss = loss / args.gradient_accumulation_steps
            loss.backward()
        """,
        """
        for step, batch in enumerate(loader):
            loss = model(batch)
            if epoch < warmup_epochs:
                loss = loss * (epoch + 1) / warmup_epochs
            loss.backward()
        """,
        """
        for i, batch in enumerate(loader):
            loss = model(batch)
            if i == 0:
                loss = loss / accum
                loss.backward()
        """,
        """
        for i, batch in enumerate(loader):
            loss = model(batch) / accum
            if i + 1 == len(loader):
                loss = loss * accum / (len(loader) % accum)
            loss.backward()
        """,
        """
        import torch

        class Trainer:
            def training_step(self, model, batch):
                loss = model(**batch).loss
                if self.accumulation > 1:
                    loss = loss / self.accumulation
                loss.backward()
                return loss.detach()

            def train(self, model, loader):
                total = 0.0
                for step, batch in enumerate(loader):
                    if (step + 1) % self.accumulation != 0 and self.distributed:
                        with model.no_sync():
                            total += self.training_step(model, batch)
                    else:
                        total += self.training_step(model, batch)
                    if (step + 1) % self.accumulation == 0:
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                return total
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            backwards = fn.events_of(Kind.BACKWARD)
            for rescale in fn.events_of(Kind.RESCALE):
                loop = rescale.innermost_loop
                if not fn.owns(loop) or not rescale.target:
                    continue
                accumulation = is_accumulation_count(rescale.detail["factor"])
                varying = [
                    g for g in rescale.guards_within(loop)
                    if (g.kind == GuardKind.DEBUG and g.holds)
                    or (accumulation and g.kind == GuardKind.OTHER and names_in(g.test) & loop_targets(loop))
                ]
                if not varying:
                    continue
                guard = varying[0]
                for backward in backwards:
                    if rescale.via and backward.via and backward.node is not rescale.node:
                        continue  # two calls of one helper that rescales and backpropagates together
                    if backward.target == rescale.target and backward.order > rescale.order \
                            and backward.in_loop(loop) and not backward.has_guard(guard):
                        yield Report(
                            rescale.node,
                            f"'{rescale.written}' is rescaled only when {describe(guard)} (line {guard.line}), "
                            f"but backward() at line {backward.line} runs on every iteration",
                            fix=_out_of_branch(rescale, guard),
                        )
                        break


def _out_of_branch(rescale, guard):
    """Move the rescale to just after the ``if`` whose branch holds it (directly, not nested
    further): it then runs on every iteration that reaches backward()."""
    branch = guard.node
    if rescale.via or not isinstance(branch, ast.If) or not any(rescale.node is s for s in branch.body + branch.orelse):
        return None
    return Restructure("move the rescale out of the branch, after it", anchor=branch.lineno,
                       moved=rescale.node.lineno, anchor_is_block=True)
