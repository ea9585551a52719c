from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, exclusive, functions
from trainlint.semantics.boundaries import found_in_one_helper, loop_passes_away
from trainlint.semantics.prerequisites import OPTIMIZER_STEP, SCALED_BACKWARD


class ScaledBackwardUnscaledStep(Rule):
    """
    What it does: finds `scaler.scale(loss).backward()` followed by a plain `optimizer.step()`
    (instead of `scaler.step(optimizer)`), and `scaler.step(optimizer)` with no `scaler.update()`.

    Why it is bad: a GradScaler multiplies the loss by ~65536 so that fp16 gradients do not
    underflow. `optimizer.step()` applies those gradients still scaled (a learning rate 65536 times
    too large) and skips the inf/NaN check that `scaler.step` makes. Without `scaler.update()` the
    scale never adapts: after one overflow every step is skipped forever.

    Not flagged: branches where the scaled and the plain paths are alternatives
    (`if use_amp: scaler.step(opt) else: opt.step()`), a plain step after an explicit
    `scaler.unscale_(optimizer)`, and step helpers without a loop (the caller may update).

    Fix: `scaler.step(optimizer)` then `scaler.update()`.
    """

    code = "TL501"
    name = "scaled-backward-unscaled-step"
    severity = "error"
    summary = "scaler.scale(loss).backward() with a plain optimizer.step(), or no scaler.update()"
    requires = (SCALED_BACKWARD, OPTIMIZER_STEP)

    INVALID = [
        """
        scaler = torch.cuda.amp.GradScaler()
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = criterion(model(x), y)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            optimizer.step()  # <-
        """,
        """
        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            loss = model(batch)
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # <-
            optimizer.zero_grad()
        """,
    ]
    VALID = [
        """
        scaler = torch.cuda.amp.GradScaler()
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = criterion(model(x), y)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            if use_amp:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            optimizer.zero_grad()
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            backwards = fn.events_of(Kind.BACKWARD)
            scaled = [b for b in backwards if b.detail.get("scaled")]
            if not scaled:
                continue
            steps = fn.events_of(Kind.OPT_STEP)
            unscales = fn.events_of(Kind.UNSCALE)
            for step in steps:
                loop = step.innermost_loop
                if loop is not None and not fn.owns(loop):
                    continue
                before = [b for b in scaled if b.order < step.order and not exclusive(b, step)
                          and (loop is None or b.in_loop(loop))]
                if not before or found_in_one_helper(before[-1], step):
                    continue
                if not step.detail.get("scaled"):
                    feeding = [b for b in backwards if b.order < step.order and not exclusive(b, step)
                               and (loop is None or b.in_loop(loop))]
                    if not feeding[-1].detail.get("scaled"):
                        continue  # an unscaled backward() feeds this step (another optimizer's loss)
                    if not any(before[-1].order < u.order < step.order for u in unscales):
                        yield Report(step.node, f"backward() at line {before[-1].line} is scaled by a GradScaler but "
                                                f"this optimizer.step() applies the scaled gradients: use "
                                                f"scaler.step(optimizer)")
                elif loop is not None and not step.detail.get("framework") and not fn.events_of(Kind.SCALER_UPDATE) \
                        and not loop_passes_away(fn, loop, step.detail.get("scaler")):
                    yield Report(step.node, "scaler.step() without scaler.update(): the loss scale never adapts, "
                                            "and after an overflow every step is skipped")
