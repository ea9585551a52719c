from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.schedules import counts_epochs, draws_batches, scheduler_granularity, stepped_to_a_given_value
from trainlint.semantics.prerequisites import BACKWARD, OPTIMIZER_STEP


class SchedulerGranularityMismatch(Rule):
    """
    What it does: finds an epoch-granular LR scheduler stepped inside the batch loop, or a
    per-iteration scheduler stepped once per epoch. The scheduler's constructor must make the
    intent clear: `StepLR(step_size=<epochs>)`, literal lengths below 1000 (`StepLR(step_size=30)`,
    `MultiStepLR(milestones=[30, 60, 90])`: stepped per batch they decay within the first epoch), `CosineAnnealingLR(T_max=args.epochs)`,
    `ExponentialLR(gamma=0.9)` are epoch schedules; `OneCycleLR(steps_per_epoch=...)`,
    `CyclicLR`, `get_linear_schedule_with_warmup(num_training_steps=len(loader) * epochs)` and any
    schedule whose length is built from `len(loader)` are per-iteration schedules.

    Why it is bad: stepped per batch, an epoch schedule finishes its decay within the first epoch
    (the learning rate collapses to ~0 and training stalls); stepped per epoch, a per-iteration
    schedule never leaves its warm-up.

    Not flagged: schedulers whose constructor gives no evidence of either granularity; a lone
    counted loop (`for i in range(n)`) that draws no batch, as full-batch training does (a
    Gaussian process fitted to all its points): there a turn is an epoch.

    Fix: step the scheduler where its length was counted (per batch or per epoch), or rebuild it
    with a length in the unit you step it in.
    """

    code = "TL402"
    name = "scheduler-granularity-mismatch"
    severity = "warning"
    summary = "epoch scheduler stepped per batch, or per-iteration scheduler stepped per epoch"
    requires = (OPTIMIZER_STEP, BACKWARD)

    INVALID = [
        """
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
        for epoch in range(args.epochs):
            for x, y in loader:
                loss = criterion(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()  # <-
        """,
        """
        from transformers import get_linear_schedule_with_warmup
        total = len(train_loader) * num_epochs
        scheduler = get_linear_schedule_with_warmup(optimizer, 500, total)
        for epoch in range(num_epochs):
            for batch in train_loader:
                loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            scheduler.step()  # <-
        """,
        """
        from torch.optim.lr_scheduler import OneCycleLR
        sched = OneCycleLR(opt, max_lr=0.1, epochs=epochs, steps_per_epoch=len(loader))
        for epoch in range(epochs):
            train_one_epoch(model, loader, opt)
            sched.step()  # <-
        def train_one_epoch(model, loader, opt):
            for x, y in loader:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        """,
        """
        scheduler = StepLR(optimizer, step_size=30)
        for epoch in range(90):
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
                scheduler.step()  # <-
        """,
    ]
    VALID = [
        """
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
        for epoch in range(args.epochs):
            for x, y in loader:
                loss = criterion(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            scheduler.step()
        """,
        """
        scheduler = CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))
        for epoch in range(args.epochs):
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
                scheduler.step()
        """,
        """
        scheduler = ReduceLROnPlateau(optimizer, patience=3)
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
            scheduler.step(validate(model))
        """,
        """
        import torch
        model = Net()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=40, gamma=0.5)

        def train():
            model.train()
            optimizer.zero_grad()
            out = model(data.x, data.edge_index)
            loss = F.nll_loss(out[data.train_mask], data.y[data.train_mask])
            loss.backward()
            optimizer.step()
            scheduler.step()
            return float(loss)

        for epoch in range(1, 201):
            loss = train()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for event in fn.events_of(Kind.SCHED_STEP):
                loop = event.innermost_loop
                if loop is None or stepped_to_a_given_value(event):
                    continue
                if event.via and event.target.startswith("self."):
                    continue  # the helper method sees the same constructor and reports it itself
                in_batch_loop = not counts_epochs(loop) and draws_batches(loop) and any(
                    b.innermost_loop is loop for b in fn.events_in(loop, Kind.BACKWARD) if not b.detail.get("external"))
                # the optimizer steps in a loop below this one; a step beside the scheduler's makes it
                # per step, whatever inner loop accumulates the gradients (micro-batches, tasks)
                below = any(b.innermost_loop is not loop or b.detail.get("external")
                            for b in fn.events_in(loop, Kind.BACKWARD)) \
                    and not any(s.innermost_loop is loop for s in fn.events_in(loop, Kind.OPT_STEP))
                granularity = scheduler_granularity(fn, event.target)
                if granularity == "epoch" and in_batch_loop:
                    yield Report(event.node, "this scheduler counts epochs (see its constructor) but is stepped "
                                             "every batch: its whole schedule runs out within the first epoch")
                elif granularity == "iteration" and below and not in_batch_loop:
                    yield Report(event.node, "this scheduler counts iterations (its length comes from the number "
                                             "of batches) but is stepped once per epoch: it never gets past warm-up")
