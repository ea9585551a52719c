import ast

from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.boundaries import (
    accumulation_boundary, describe, forward_call_counters, instances_of, used_as_step_count,
)
from trainlint.semantics.syntax import text
from trainlint.semantics.prerequisites import OPTIMIZER_STEP


class MicroBatchCounterUsedAsStep(Rule):
    """
    What it does: finds, under gradient accumulation, a counter incremented on every micro-batch
    that is used as the number of optimizer steps: compared with a warm-up length, or passed as
    `step=` / `num_updates=` to a schedule, an EMA or a logger.

    Why it is bad: with accumulation k the counter runs k times faster than the optimizer. A
    400-step warm-up ends after 400/k real steps, EMA decay and schedules follow the wrong clock,
    and "global step" in the logs is k times too large. The FG-CLIP report had a memory-bank
    warm-up counted in forward calls while the trainer counted optimizer steps.

    Not flagged: counters incremented on the accumulation boundary, and counters used only for
    the accumulation test itself or for logging micro-batches.

    Fix: count optimizer steps in the boundary branch (`if (i + 1) % k == 0: ...; step += 1`)
    and use that counter.
    """

    code = "TL206"
    name = "micro-batch-counter-used-as-step"
    severity = "warning"
    summary = "a micro-batch counter used as the optimizer-step count (warm-up, EMA, schedule)"
    requires = (OPTIMIZER_STEP,)

    INVALID = [
        """
        global_step = 0
        for i, batch in enumerate(loader):
            loss = model(batch) / accum
            loss.backward()
            global_step += 1  # <-
            lr = base_lr * min(1.0, global_step / warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        num_updates = 0
        for i, batch in enumerate(loader):
            loss = model(batch) / accum
            loss.backward()
            num_updates += 1  # <-
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
                model_ema.update(model, step=num_updates)
        """,
    ]
    VALID = [
        """
        global_step = 0
        for i, batch in enumerate(loader):
            loss = model(batch) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
                global_step += 1
                lr = base_lr * min(1.0, global_step / warmup_steps)
        """,
        """
        step = 0
        for batch in loader:
            loss = model(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step < warmup_steps:
                scale_lr(optimizer, step / warmup_steps)
        """,
        """
        micro = 0
        for batch in loader:
            loss = model(batch) / accum
            loss.backward()
            micro += 1
            if micro % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            steps = fn.events_of(Kind.OPT_STEP)
            for counter in fn.events_of(Kind.ACCUMULATE):
                loop = counter.innermost_loop
                value = counter.detail["value"]
                if not fn.owns(loop) or counter.via or counter.guards_within(loop) or not (
                        isinstance(value, ast.Constant) and value.value == 1):
                    continue
                for step in steps:
                    boundary = accumulation_boundary(fn, step, loop) if step.innermost_loop is loop else []
                    if not boundary:
                        continue
                    use = used_as_step_count(loop.node, counter.target)
                    if use is not None:
                        yield Report(counter.node, f"'{counter.written}' counts micro-batches, but line {use.lineno} "
                                                   f"uses it as an optimizer-step count ({text(use)}) while "
                                                   f"optimizer.step() at line {step.line} runs only when "
                                                   f"{describe(boundary[0])}: it runs k times too fast")
                        break
        yield from self.forward_counters(facts)

    @staticmethod
    def forward_counters(facts):
        """A module counting its forward calls as steps, trained in a loop that accumulates: one
        finding per counter, at the increment."""
        pending = list(forward_call_counters(facts))
        for fn in functions(facts):
            for step in fn.events_of(Kind.OPT_STEP) if pending else ():
                loop = step.innermost_loop
                boundary = accumulation_boundary(fn, step, loop) if fn.owns(loop) else []
                trained = [c for c in pending if boundary and instances_of(fn, c[0], loop)]
                for cls, counter, use in trained:
                    yield Report(counter.node, f"'{counter.written}' counts forward calls (one per micro-batch), "
                                               f"but line {use.lineno} uses it as an optimizer-step count while "
                                               f"optimizer.step() at line {step.line} runs only when "
                                               f"{describe(boundary[0])}: it runs k times too fast")
                pending = [c for c in pending if c not in trained]
