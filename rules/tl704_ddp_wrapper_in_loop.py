from trainlint.rule import Report, Rule
from trainlint.semantics import functions
from trainlint.semantics.distributed import bare_module_called_beside_wrapper, ddp_wrappings, wrappers_in_training_loops
from trainlint.semantics.syntax import calls_in, dotted, last_part, text
from trainlint.semantics.prerequisites import DATA_PARALLEL, TRAINING


class DdpWrapperInLoop(Rule):
    """
    What it does: finds `DistributedDataParallel(...)` or `FSDP(...)` constructed inside a training
    loop, and training loops that call both the DDP wrapper and the bare module it wraps
    (`ddp_model(x)` on some steps, `model(x)` on others).

    Why it is bad: a forward through the bare module runs no DDP hooks, so its backward skips the
    gradient all-reduce and each rank applies its own gradients: the replicas drift apart with no
    error. Re-wrapping every iteration rebuilds the reducer and re-broadcasts rank 0's weights each
    step (slow, and it hides the drift). TrainCheck's suite reproduces a conditional DDP wrap.

    Not flagged: wrapping once before the loop; a new model wrapped per iteration of a loop over
    runs (cross-validation folds, sweeps); calling the wrapped module for evaluation outside the
    training loop.

    Fix: wrap once, before training, and call only the wrapper in the training loop (use
    `ddp_model.module` for evaluation or saving).
    """

    code = "TL704"
    name = "ddp-wrapper-in-loop"
    severity = "error"
    summary = "DDP/FSDP wrapper built inside the training loop, or the bare module trained beside it"
    requires = (DATA_PARALLEL, TRAINING)

    INVALID = [
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def train(model, loader, optimizer, rank):
            for step, (x, y) in enumerate(loader):
                ddp_model = DDP(model, device_ids=[rank])  # <-
                loss_fn(ddp_model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def train(model, loader, optimizer, rank):
            ddp_model = DDP(model, device_ids=[rank])
            for step, (x, y) in enumerate(loader):
                if step % 2 == 0:
                    out = ddp_model(x)
                else:
                    out = model(x)  # <-
                loss_fn(out, y).backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
    ]
    VALID = [
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def train(model, loader, optimizer, rank):
            ddp_model = DDP(model, device_ids=[rank])
            for x, y in loader:
                loss_fn(ddp_model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def cross_validate(folds, rank):
            for train_loader, val_loader in folds:
                model = Net().to(rank)
                ddp_model = DDP(model, device_ids=[rank])
                optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.1)
                for x, y in train_loader:
                    loss_fn(ddp_model(x), y).backward()
                    optimizer.step()
                    optimizer.zero_grad()
        """,
        """
        from torch.nn.parallel import DistributedDataParallel as DDP

        def fit(model, loader, val_loader, optimizer, epochs):
            ddp_model = DDP(model)
            for epoch in range(epochs):
                for x, y in loader:
                    loss_fn(ddp_model(x), y).backward()
                    optimizer.step()
                    optimizer.zero_grad()
            with torch.no_grad():
                for x, y in val_loader:
                    metric(model(x), y)
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for call, loop in wrappers_in_training_loops(fn):
                yield Report(call, f"{last_part(text(call.func))}(...) is built on every iteration of the training "
                                   f"loop at line {loop.node.lineno}: wrap once, before training")
            for wrapping in ddp_wrappings(fn):
                loop = bare_module_called_beside_wrapper(fn, wrapping)
                if loop is None:
                    continue
                call = next((c for c in calls_in(loop.node) if dotted(c.func) == wrapping.module), None)
                if call is not None:
                    yield Report(call, f"'{wrapping.module}' is called directly in the training loop that also calls "
                                       f"its DDP wrapper '{wrapping.wrapper}': steps through the bare module skip the "
                                       f"gradient all-reduce, and the replicas drift apart")

