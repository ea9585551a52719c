from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.boundaries import backward_events_in
from trainlint.semantics.syntax import last_part
from trainlint.semantics.values import bound_in_loop, built_over, keeps_no_state, starts_new_run
from trainlint.semantics.prerequisites import BACKWARD_WRITTEN


class OptimizerRebuiltInLoop(Rule):
    """
    What it does: finds an optimizer, LR scheduler or GradScaler constructed inside the training
    loop (a loop that runs `backward()`), on every iteration.

    Why it is bad: the object's state starts over each time: Adam's moment estimates and step
    count (so every step is a bias-corrected first step), momentum buffers, the schedule's
    position (the LR never leaves its first value) and the loss scale. Training runs, just far
    worse than the same code with the object built once before the loop.

    Not flagged: construction under a condition (re-building at a stage change, e.g.
    `if epoch == unfreeze_epoch:`), a new model built in the same iteration (cross-validation
    folds, sweeps, restarts: each iteration is a new run), optimizers over tensors created in the
    loop itself (per-batch inner optimisation such as adversarial perturbations), and plain SGD
    without momentum (it keeps no state between steps: a new one loses nothing).

    Fix: build the optimizer (scheduler, scaler) once, before the loop.
    """

    code = "TL403"
    name = "optimizer-rebuilt-in-loop"
    severity = "error"
    summary = "optimizer/scheduler/GradScaler constructed inside the training loop: state resets"
    requires = (BACKWARD_WRITTEN,)

    INVALID = [
        """
        for epoch in range(epochs):
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # <-
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
        """,
        """
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for x, y in loader:
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1000)  # <-
            scaler = torch.cuda.amp.GradScaler()  # <-
            optimizer.zero_grad()
            scaler.scale(criterion(model(x), y)).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        """,
    ]
    VALID = [
        """
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
        """,
        """
        for epoch in range(epochs):
            if epoch == unfreeze_epoch:
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
        """,
        """
        for x, y in loader:
            delta = torch.zeros_like(x, requires_grad=True)
            attack = torch.optim.SGD([delta], lr=0.01)
            for _ in range(steps):
                attack.zero_grad()
                (-criterion(model(x + delta), y)).backward()
                attack.step()
        """,
        """
        import torch
        model = build_model()
        for _ in range(5):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            optimizer.zero_grad()
            model(torch.randn(10, 5)).sum().backward()
            optimizer.step()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for built in fn.events_of(Kind.CONSTRUCT):
                loop = built.innermost_loop
                if built.detail["role"] == "sampler" or built.via or not fn.owns(loop) or built.guards_within(loop):
                    continue
                if not any(not b.via for b in backward_events_in(fn, loop)):
                    continue  # the loop calls a whole training run (hyper-parameter search), not a step
                call = built.detail["call"]
                over = built_over(call, built.detail["role"])
                if over is not None and bound_in_loop(over, loop) or starts_new_run(fn, loop):
                    continue  # built over something made in this iteration (a new model: a new run)
                if keeps_no_state(fn, call):
                    continue  # plain SGD: nothing to start over
                yield Report(call, f"{last_part(built.target)} is constructed on every iteration of this training "
                                   f"loop (line {loop.line}): its state (moments, schedule position, loss scale) "
                                   f"starts over each time; build it once before the loop")
