import ast

from trainlint.rule import Report, Restructure, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.boundaries import loop_passes_away, may_clear_gradients_of
from trainlint.semantics.prerequisites import BACKWARD, OPTIMIZER_STEP


class GradientsNeverCleared(Rule):
    """
    What it does: finds a training loop that calls `backward()` and `optimizer.step()` but never
    clears gradients (no `zero_grad()`, no `p.grad = None`).

    Why it is bad: `backward()` adds into `.grad`. Without clearing, every step applies the sum of
    all gradients since the start of training: the effective learning rate grows without bound
    and training diverges or oscillates while the code looks normal.

    Not flagged: loops that hand the optimizer or model to a function trainlint cannot see (it may
    clear them), closures passed to `step(closure)` (LBFGS), DeepSpeed engines and mmengine
    `update_params`, which clear gradients themselves.

    Fix: call `optimizer.zero_grad()` after `optimizer.step()` (or before `backward()`);
    `--fix --unsafe-fixes` inserts it after the step.
    """

    code = "TL203"
    name = "gradients-never-cleared"
    severity = "warning"
    summary = "backward() and step() in a loop, but gradients are never cleared"
    requires = (BACKWARD, OPTIMIZER_STEP)

    INVALID = [
        """
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()  # <-
        """,
        """
        def fit(model, loader, epochs):
            opt = torch.optim.AdamW(model.parameters())
            for epoch in range(epochs):
                for batch in loader:
                    scaler.scale(model(batch)).backward()
                    scaler.step(opt)  # <-
                    scaler.update()
        """,
    ]
    VALID = [
        """
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            for p in model.parameters():
                p.grad = None
        """,
        """
        for x, y in loader:
            def closure():
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                return loss
            optimizer.step(closure)
        """,
        """
        for batch in loader:
            loss = model(batch)
            loss.backward()
            optimizer.step()
            trainer.after_step(model, optimizer)
        """,
        """
        for batch in loader:
            loss = model_engine(batch)
            model_engine.backward(loss)
            model_engine.step()
        """,
        """
        import torch
        w = torch.tensor([0.1, -0.2, -0.1], requires_grad=True)
        target = torch.tensor([0.4, 0.2, -0.5])
        optimizer = torch.optim.AdamW([w], lr=0.2)
        for _ in range(100):
            loss = torch.nn.functional.mse_loss(w, target)
            loss.backward()
            optimizer.step()
            w.grad.zero_()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for step in fn.events_of(Kind.OPT_STEP):
                loop = step.innermost_loop
                if not fn.owns(loop) or isinstance(step.origin, ast.Call) and step.origin.args and not step.detail.get("scaled"):
                    continue  # step(closure): the closure clears
                if not fn.events_in(loop, Kind.BACKWARD):
                    continue
                if any(may_clear_gradients_of(fn, z, step) for z in fn.events_in(loop, Kind.ZERO_GRAD)):
                    continue
                if loop_passes_away(fn, loop, step.target):
                    continue
                yield Report(
                    step.node,
                    "gradients are never cleared in this training loop: each step applies the sum of every "
                    "gradient since training began; call zero_grad() after step()",
                    fix=None if step.via or not step.target else Restructure(
                        f"insert {step.target}.zero_grad() after the step", anchor=step.node.lineno,
                        code=f"{step.target}.zero_grad()"),
                )
