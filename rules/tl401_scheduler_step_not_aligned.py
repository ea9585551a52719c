from trainlint.rule import Report, Restructure, Rule
from trainlint.semantics import GuardKind, Kind, exclusive, functions
from trainlint.semantics.boundaries import accumulation_boundary, boundary_guards, describe, is_prepared, matching_steps
from trainlint.semantics.prerequisites import OPTIMIZER_STEP
from trainlint.semantics.schedules import length_counts_micro_batches, stepped_to_a_given_value


class SchedulerStepNotAligned(Rule):
    """
    What it does: finds `scheduler.step()` (or an EMA update) that does not run under the same
    guard as `optimizer.step()` in the same loop: on every micro-batch while the optimizer steps
    every k; only inside a debug/first-iteration branch; in the branch where the optimizer step is
    skipped; or (an argument-less `scheduler.step()`) before `optimizer.step()` in the same
    iteration.

    Why it is bad: the schedule advances k times too fast (warm-up ends early, cosine decay reaches
    zero a fraction of the way through training), or not at all, and the EMA averages weights that
    were never updated. One report had the scheduler/EMA update indented into the wrong block.

    Not flagged: schedulers prepared by `accelerator.prepare` (accelerate steps them only on the
    accumulation boundary), steps inside `with accelerator.accumulate(model):`, schedulers stepped
    once per epoch outside the batch loop (see TL402), and steps given a value
    (`scheduler.step(val_loss)` of a plateau scheduler, `scheduler.step(epoch)`): they do not
    advance by the number of calls; and schedules stepped every micro-batch whose length counts
    micro-batches (`total = len(loader) * epochs`, `num_images // batch_size * epochs`, with no
    accumulation factor in it): they keep pace with training however often the optimizer steps.

    Fix: step the scheduler (and update the EMA) right after `optimizer.step()`, in the same branch
    (`--fix --unsafe-fixes` moves it there).
    """

    code = "TL401"
    name = "scheduler-step-not-aligned"
    severity = "error"
    summary = "scheduler/EMA step not under the same guard as optimizer.step()"
    requires = (OPTIMIZER_STEP,)

    INVALID = [
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
            scheduler.step()  # <-
        """,
        """
        for epoch in range(epochs):
            for bi, batch in enumerate(loader):
                loss = model(batch)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                if epoch == 1 and bi == 0:
                    lr_scheduler.step()  # <-
                    ema.update(model)  # <-
        """,
        """
        for batch in loader:
            loss = model(batch)
            loss.backward()
            if not torch.isfinite(loss):
                scheduler.step()  # <-
                optimizer.zero_grad()
                continue
            optimizer.step()
            optimizer.zero_grad()
        """,
        """
        for batch in loader:
            scheduler.step()  # <-
            loss = model(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
    ]
    VALID = [
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        """,
        """
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        """,
        """
        for epoch in range(epochs):
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            scheduler.step()
        """,
        """
        for batch_idx, (x, y) in enumerate(loader):
            last_batch = batch_idx == last_idx
            need_update = last_batch or (batch_idx + 1) % accum_steps == 0
            loss = loss_fn(model(x), y) / accum_steps
            loss_scaler(loss, optimizer, parameters=model.parameters(), need_update=need_update)
            if not need_update:
                continue
            num_updates += 1
            optimizer.zero_grad()
            if model_ema is not None:
                model_ema.update(model, step=num_updates)
            lr_scheduler.step_update(num_updates=num_updates)
        """,
        """
        for ni, (imgs, targets) in enumerate(loader):
            loss = model(imgs, targets)
            scaler.scale(loss).backward()
            if ni - last_opt_step >= accumulate:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
                if ema:
                    ema.update(model)
                last_opt_step = ni
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for event in fn.events_of(Kind.SCHED_STEP, Kind.EMA_UPDATE):
                loop = event.innermost_loop
                if not fn.owns(loop) or event.in_with("accumulate") or is_prepared(fn, event.target) \
                        or event.kind == Kind.SCHED_STEP and stepped_to_a_given_value(event):
                    continue
                candidates = matching_steps(fn, event, [s for s in fn.events_in(loop, Kind.OPT_STEP) if s.innermost_loop is loop])
                problems = [self.misalignment(fn, event, step, loop) for step in candidates]
                if problems and all(problems):
                    step = candidates[0]
                    yield Report(event.node, problems[0], fix=None if event.via or step.via else Restructure(
                        "move it to just after the optimizer step, under the step's guard",
                        anchor=step.node.lineno, moved=event.node.lineno))

    @staticmethod
    def misalignment(fn, event, step, loop):
        what = "scheduler.step()" if event.kind == Kind.SCHED_STEP else "the EMA update"
        step_boundary = accumulation_boundary(fn, step, loop)
        if step_boundary and not boundary_guards(event, loop) and not (
                event.kind == Kind.SCHED_STEP and length_counts_micro_batches(fn, event.target, step_boundary, loop)):
            effect = "the schedule advances k times too fast" if event.kind == Kind.SCHED_STEP else \
                "the EMA averages k times per weight update"
            return (f"{what} runs every micro-batch, but optimizer.step() at line {step.line} runs only when "
                    f"{describe(step_boundary[0])}: {effect}")
        debug = [g for g in event.guards_within(loop) if g.kind == GuardKind.DEBUG and g.holds and not step.has_guard(g)]
        if debug:
            return (f"{what} runs only when {describe(debug[0])}, while optimizer.step() at line {step.line} "
                    f"runs every iteration")
        if exclusive(event, step):
            return f"{what} runs in the branch where optimizer.step() at line {step.line} is skipped"
        if event.kind == Kind.SCHED_STEP and event.order < step.order and not event.guards_within(loop) \
                and not step.guards_within(loop):
            return (f"{what} runs before optimizer.step() at line {step.line} in the same iteration: "
                    f"the first value of the schedule is skipped")
        return None
