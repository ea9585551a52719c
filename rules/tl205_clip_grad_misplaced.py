from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, exclusive, functions
from trainlint.semantics.prerequisites import BACKWARD, CLIP, OPTIMIZER_STEP


class ClipGradMisplaced(Rule):
    """
    What it does: finds `clip_grad_norm_` / `clip_grad_value_` that runs after `optimizer.step()`
    (with no later step in the iteration) or before the iteration's first `backward()`.

    Why it is bad: clipping only matters between `backward()` and `step()`. After the step it
    clips gradients that have already been applied (and are about to be cleared); before
    `backward()` it clips last iteration's leftovers. The run trains unclipped while the code says
    it clips, which is how fp16 and RNN runs blow up "despite clipping".

    Not flagged: clipping between the last `backward()` and `step()`, including on the
    accumulation boundary.

    Fix: clip after `backward()` (and after `scaler.unscale_(optimizer)`), right before `step()`.
    """

    code = "TL205"
    name = "clip-grad-misplaced"
    severity = "error"
    summary = "gradient clipping after step() or before backward(): it clips nothing applied"
    requires = (CLIP, BACKWARD, OPTIMIZER_STEP)

    INVALID = [
        """
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # <-
        """,
        """
        for x, y in loader:
            optimizer.zero_grad()
            nn.utils.clip_grad_value_(model.parameters(), 0.5)  # <-
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
    ]
    VALID = [
        """
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        """,
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        for x, y in loader:
            loss_d = d_loss(x)
            loss_d.backward()
            opt_d.step()
            loss_g = g_loss(x)
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
            opt_g.step()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            steps = fn.events_of(Kind.OPT_STEP)
            for clip in fn.events_of(Kind.CLIP):
                loop = clip.innermost_loop
                if not fn.owns(loop) or any(b.innermost_loop is not loop for b in fn.events_in(loop, Kind.BACKWARD)):
                    continue  # backward in an inner (accumulation) loop: order within one pass is unclear
                iteration_backwards = [b for b in fn.events_in(loop, Kind.BACKWARD) if not exclusive(b, clip)]
                iteration_steps = [s for s in steps if s.innermost_loop is loop and not exclusive(s, clip)]
                if not iteration_backwards or not iteration_steps:
                    continue
                if any(s.order > clip.order for s in iteration_steps):
                    if all(b.order > clip.order for b in iteration_backwards):
                        yield Report(clip.node, f"this clips before backward() at line {iteration_backwards[0].line} "
                                                f"has computed this iteration's gradients: it clips nothing applied")
                    continue
                last_step = max(iteration_steps, key=lambda s: s.order)
                if not any(last_step.order < b.order < clip.order for b in iteration_backwards):
                    yield Report(clip.node, f"this clips after optimizer.step() at line {last_step.line} has applied "
                                            f"the gradients: move it between backward() and step()")
