from trainlint.rule import Report, Restructure, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.boundaries import accumulation_boundary, clears_gradients_of, describe
from trainlint.semantics.prerequisites import GRADIENTS_CLEARED, OPTIMIZER_STEP


class ZeroGradEveryMicroBatch(Rule):
    """
    What it does: finds gradient accumulation where `optimizer.step()` runs only on the
    accumulation boundary but `zero_grad()` runs on every micro-batch.

    Why it is bad: `zero_grad()` throws away the gradients accumulated so far, so each step applies
    the gradient of the last micro-batch alone. The effective batch is k times smaller than
    intended and, with the loss divided by k, the learning rate is k times smaller too. Nothing
    crashes; the model just learns slowly or not at all.

    Not flagged: `zero_grad()` under the same boundary (or at the start of a window), inside
    `with accelerator.accumulate(model):` (accelerate skips it off the boundary), DeepSpeed
    `engine.backward/step`, and `zero_grad()` behind a loop-invariant test that accumulation is off
    (`if ACCUMULATION_STEPS == 1: optimizer.zero_grad()`) while the boundary branch clears
    gradients after stepping: a correct and common idiom.

    Fix: call `optimizer.zero_grad()` right after `optimizer.step()`, inside the boundary branch
    (`--fix --unsafe-fixes` moves it there).
    """

    code = "TL201"
    name = "zero-grad-every-micro-batch"
    severity = "error"
    summary = "zero_grad() runs every micro-batch while step() runs every k: accumulation is lost"
    requires = (GRADIENTS_CLEARED, OPTIMIZER_STEP)

    INVALID = [
        """
        for i, (x, y) in enumerate(loader):
            optimizer.zero_grad()  # <-
            loss = criterion(model(x), y) / accum_steps
            loss.backward()
            if (i + 1) % accum_steps == 0:
                optimizer.step()
        """,
        """
        def train(model, loader, optimizer, accumulate):
            for step, batch in enumerate(loader):
                loss = model(batch).loss
                loss.backward()
                model.zero_grad()  # <-
                need_update = (step + 1) % accumulate == 0 or step + 1 == len(loader)
                if need_update:
                    optimizer.step()
        """,
        """
        for it, batch in enumerate(loader):
            optimizer.zero_grad()  # <-
            loss = model(batch) / args.grad_accum
            scaler.scale(loss).backward()
            if (it + 1) % args.grad_accum != 0:
                continue
            scaler.step(optimizer)
            scaler.update()
        """,
        """
        class Model(pl.LightningModule):
            def training_step(self, batch, batch_idx):
                opt = self.optimizers()
                opt.zero_grad()  # <-
                self.manual_backward(self.compute_loss(batch) / 4)
                if (batch_idx + 1) % 4 == 0:
                    opt.step()
        """,
        """
        for i, batch in enumerate(loader):
            for p in model.parameters():  # <-
                p.grad = None
            model(batch).backward()
            if (i + 1) % k == 0:
                opt.step()
        """,
    ]
    VALID = [
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y) / accum_steps
            loss.backward()
            if (i + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        ACCUMULATION_STEPS = 8
        for idx, (x, y) in enumerate(loader):
            loss = criterion(model(x), y)
            if ACCUMULATION_STEPS > 1:
                loss = loss / ACCUMULATION_STEPS
                loss.backward()
                if (idx + 1) % ACCUMULATION_STEPS == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            else:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        """,
        """
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        """,
        """
        for step, batch in enumerate(loader):
            loss = model_engine(batch)
            model_engine.backward(loss)
            model_engine.step()
        """,
        """
        for i, (real, _) in enumerate(loader):
            opt_d.zero_grad()
            loss_d = critic(real).mean() - critic(gen(z)).mean()
            loss_d.backward()
            opt_d.step()
            if i % n_critic == 0:
                opt_g.zero_grad()
                loss_g = -critic(gen(z)).mean()
                loss_g.backward()
                opt_g.step()
        """,
        """
        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            loss = self.compute_loss(batch)
            self.manual_backward(loss)
            if (batch_idx + 1) % 2 == 0:
                opt.step()
                opt.zero_grad()
        """,
        """
        for i, batch in enumerate(loader):
            if i % accum == 0:
                optimizer.zero_grad()
            loss = model(batch) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
        """,
        """
        class GradAccumOptimizer:
            def __init__(self, optimizer, every):
                self.optimizer, self.every, self.calls = optimizer, every, 0

            def zero_grad(self):
                self.calls += 1
                if self.calls % self.every == 0:
                    self.optimizer.zero_grad()

        optimizer = GradAccumOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), 4)
        for i, batch in enumerate(loader):
            optimizer.zero_grad()
            model(batch).backward()
            if (i + 1) % 4 == 0:
                optimizer.step()
        """,
        """
        for ni, (imgs, targets) in enumerate(loader):
            loss = model(imgs, targets)
            scaler.scale(loss).backward()
            if ni - last_opt_step >= accumulate:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
                last_opt_step = ni
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for step in fn.events_of(Kind.OPT_STEP):
                loop = step.innermost_loop
                if not fn.owns(loop) or step.in_with("accumulate"):
                    continue
                boundary = accumulation_boundary(fn, step, loop)
                if not boundary:
                    continue
                for zero in fn.events_in(loop, Kind.ZERO_GRAD):
                    if zero.innermost_loop is not loop or zero.guards_within(loop) or zero.in_with("accumulate"):
                        continue
                    if clears_gradients_of(fn, zero, step):
                        yield Report(
                            zero.node,
                            f"zero_grad() here runs every micro-batch, but optimizer.step() at line {step.line} "
                            f"runs only when {describe(boundary[0])}: only the last micro-batch's gradient is applied",
                            fix=None if zero.via or step.via else Restructure(
                                "move zero_grad() to just after the step, inside the accumulation boundary",
                                anchor=step.node.lineno, moved=zero.node.lineno),
                        )
